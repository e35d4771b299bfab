"""`python -m imagegen`: read settings, configure logging, serve until SIGTERM."""

from __future__ import annotations

import asyncio
import os

from genai_common.logging import configure_logging


def main() -> None:
    # The hub libraries read these when imported: set them before importing the pipeline code.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from imagegen.app import run
    from imagegen.settings import ImagegenSettings

    settings = ImagegenSettings()
    configure_logging("imagegen", settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
