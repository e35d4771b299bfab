"""`python -m ingest`: read settings, configure logging, consume `document.uploaded` until SIGTERM."""

from __future__ import annotations

import asyncio

from genai_common.logging import configure_logging
from ingest.app import run
from ingest.settings import IngestSettings


def main() -> None:
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
