"""Time as the gateway records it (timezone-aware UTC) and shows it (Unix seconds)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def unix_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch; a moment without a zone is UTC (SQLite keeps no zone)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())
