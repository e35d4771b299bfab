"""Shared settings groups: one name and one default for what several services read."""

from __future__ import annotations

import pydantic
import pytest

from genai_common.settings import AmqpSettings, BlobSettings, CommonSettings


class WorkerSettings(AmqpSettings, BlobSettings, CommonSettings):
    worker_prefetch: int = 4


def test_a_service_composes_the_groups_it_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://user:secret@broker:5672/genai")
    monkeypatch.setenv("BLOB_STORE_URL", "file:///mnt/blobs")
    monkeypatch.setenv("WORKER_PREFETCH", "8")
    monkeypatch.setenv("SHUTDOWN_GRACE_SECONDS", "5")
    settings = WorkerSettings()
    assert settings.amqp_url == "amqp://user:secret@broker:5672/genai"
    assert settings.blob_store_url == "file:///mnt/blobs"
    assert (settings.worker_prefetch, settings.shutdown_grace_seconds) == (8, 5.0)


def test_the_composed_settings_are_frozen_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMQP_URL", raising=False)
    settings = WorkerSettings()
    assert settings.amqp_url == AmqpSettings.model_fields["amqp_url"].default
    with pytest.raises(pydantic.ValidationError):
        settings.amqp_url = "amqp://elsewhere/"  # type: ignore[misc]
    monkeypatch.setenv("WORKER_PREFETCH", "many")
    with pytest.raises(pydantic.ValidationError, match="worker_prefetch"):
        WorkerSettings()

