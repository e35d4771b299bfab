"""Typed, validated, frozen settings read from the environment once, in `__main__`.

A service's settings class extends `CommonSettings` and adds the shared groups it reads
(`AmqpSettings`, `BlobSettings`), so a setting two services share has one name, one default and
one comment: `class IngestSettings(AmqpSettings, BlobSettings, CommonSettings)`.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

T = TypeVar("T")


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


# A list given in the environment as "a, b, c" (each item validated as T): `CommaList[int]`.
CommaList = Annotated[list[T], NoDecode, BeforeValidator(_split_commas)]


# Read from the environment only (no .env file), immutable once built, unknown variables ignored.
_CONFIG = SettingsConfigDict(frozen=True, extra="ignore", env_file=None)


class CommonSettings(BaseSettings):
    """Base class of every service's settings."""

    model_config = _CONFIG

    log_level: str = "INFO"
    # Seconds a stopping process may spend finishing in-flight work (below the pod's grace period).
    shutdown_grace_seconds: float = 20.0


class AmqpSettings(BaseSettings):
    """For a service that publishes or consumes events."""

    model_config = _CONFIG

    # The RabbitMQ broker: amqp://user:password@host:port/vhost.
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # A publish the broker has not confirmed within this long fails (503 with Retry-After at an
    # HTTP edge): a broker under its memory or disk alarm blocks publishers instead of refusing them.
    amqp_publish_timeout_seconds: float = Field(default=5.0, gt=0)


class BlobSettings(BaseSettings):
    """For a service that reads or writes blobs (uploaded files, images)."""

    model_config = _CONFIG

    # `file://./var/blobs` (relative to the working directory) or `file:///abs/path` (a mounted volume).
    blob_store_url: str = "file://./var/blobs"
