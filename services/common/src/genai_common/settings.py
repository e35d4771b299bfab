"""Typed, validated, frozen settings read from the environment once, in `__main__`."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Base class of every service's settings."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_file=None)

    log_level: str = "INFO"
    # Seconds a stopping process may spend finishing in-flight work (below the pod's grace period).
    shutdown_grace_seconds: float = 20.0
