"""Typed, validated, frozen settings read from the environment once, in `__main__`."""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import BeforeValidator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

T = TypeVar("T")


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


# A list given in the environment as "a, b, c" (each item validated as T): `CommaList[int]`.
CommaList = Annotated[list[T], NoDecode, BeforeValidator(_split_commas)]


class CommonSettings(BaseSettings):
    """Base class of every service's settings."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_file=None)

    log_level: str = "INFO"
    # Seconds a stopping process may spend finishing in-flight work (below the pod's grace period).
    shutdown_grace_seconds: float = 20.0
