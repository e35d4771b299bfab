"""`python -m scraper`: read settings, configure logging, serve until SIGTERM."""

from __future__ import annotations

import uvloop

from genai_common.logging import configure_logging
from scraper.app import run
from scraper.settings import ScraperSettings


def main() -> None:
    settings = ScraperSettings()
    configure_logging("scraper", settings.log_level)
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
