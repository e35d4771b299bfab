"""`python -m retriever`: read settings, configure logging, serve until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from genai_common.logging import configure_logging
from retriever.app import run
from retriever.local_mode import LocalModeData
from retriever.settings import RetrieverSettings
from retriever.store import IncompatibleCollection


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    settings = RetrieverSettings()
    configure_logging("retriever", settings.log_level)
    try:
        asyncio.run(run(settings))
    except (IncompatibleCollection, LocalModeData) as exc:
        logging.getLogger("retriever").error("refusing to start: %s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
