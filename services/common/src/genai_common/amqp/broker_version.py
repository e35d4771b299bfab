"""The broker's version, read from the connection's server properties, against what our queue
arguments need.

Every work queue's retry queues dead-letter back with `x-dead-letter-strategy: at-least-once`
(RabbitMQ 3.10+); an older broker ignores the argument and may drop a retry on its way back, so
a message could be lost silently. Below the minimum the connection is refused with a reason that
names both versions; a version that cannot be read (another AMQP 0-9-1 server, a proxy that hides
it) is logged as a warning and accepted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

log = logging.getLogger(__name__)

# At-least-once dead-lettering of quorum queues, the retry queues' `x-dead-letter-strategy`.
MINIMUM_VERSION = (3, 10, 0)
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


class BrokerTooOld(RuntimeError):
    """The broker is older than the queue arguments need."""


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(text.strip())
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def check_broker(server_properties: Mapping[str, object], *, connection_name: str) -> str:
    """Log the broker's product and version; raise BrokerTooOld below MINIMUM_VERSION.
    Returns the version text ('' when the server did not say)."""
    product = _text(server_properties.get("product")) or "unknown broker"
    version_text = _text(server_properties.get("version"))
    version = parse_version(version_text)
    minimum = ".".join(map(str, MINIMUM_VERSION))
    if version is None:
        log.warning("the broker did not report a readable version (%s %r); RabbitMQ %s or later is needed",
                    product, version_text, minimum, extra={"connection": connection_name})
        return version_text
    if version < MINIMUM_VERSION:
        raise BrokerTooOld(f"{product} {version_text} is older than {minimum}, which our queues need "
                           f"(at-least-once dead-lettering of the retry queues); upgrade the broker")
    log.info("connected to %s %s", product, version_text, extra={"connection": connection_name})
    return version_text
