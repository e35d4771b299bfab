"""`python -m gateway`: read settings, configure logging, serve until SIGTERM."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from genai_common.logging import configure_logging


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    config = uvicorn.Config(
        create_app(settings), host=settings.gateway_host, port=settings.gateway_port, log_config=None,
        access_log=False, timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        lifespan="on",
    )
    # uvicorn turns SIGTERM into: stop accepting, finish in-flight requests, run lifespan shutdown.
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
