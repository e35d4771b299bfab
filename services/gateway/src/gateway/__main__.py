"""`python -m gateway`: read settings, configure logging, serve until SIGTERM."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.draining import DrainingServer
from gateway.settings import GatewaySettings
from genai_common.logging import configure_logging


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app, host=settings.gateway_host, port=settings.gateway_port, log_config=None,
        access_log=False, timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        lifespan="on",
    )
    # SIGTERM: not ready, stop accepting, event streams end (reconnect), in-flight requests finish,
    # lifespan shutdown (gateway.draining).
    DrainingServer(config, app.state.draining).run()


if __name__ == "__main__":
    main()
