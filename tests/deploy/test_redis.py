"""Redis, where the gateway counts its per-key limits so they hold across replicas: built in by
default, an external one by Secret, or none (each replica counts alone, and NOTES says so)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.deploy.chart import (
    NAMESPACE,
    RELEASE,
    container,
    env_of,
    named,
    notes,
    one,
    pod_spec,
    render,
    render_set,
)

REDIS = f"{RELEASE}-redis"
NO_REDIS_WARNING = "each gateway replica counts\nthe per-key limits alone"


def test_the_gateway_counts_in_the_built_in_redis_by_default() -> None:
    objects = render_set("default")
    ref = env_of(container(objects, "gateway"))["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": REDIS, "key": "REDIS_URL"}
    secret = named(objects, "Secret")[REDIS]["stringData"]
    url = urlsplit(secret["REDIS_URL"])
    assert (url.scheme, url.hostname, url.port, url.path) == ("redis", f"{REDIS}.{NAMESPACE}.svc.cluster.local",
                                                              6379, "/0")
    assert url.password == secret["password"] and len(secret["password"]) >= 32
    assert f"requirepass {secret['password']}" in secret["redis.conf"].splitlines()
    service = one(objects, "Service", REDIS)
    assert [p["port"] for p in service["spec"]["ports"]] == [6379]


def test_the_gateway_counts_in_an_external_redis_from_its_secret() -> None:
    objects = render_set("external")
    ref = env_of(container(objects, "gateway"))["REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "genai-rate-limits", "key": "REDIS_URL"}
    assert not [o for o in objects if o["metadata"]["name"].startswith(REDIS)]
    custom = render({"redis": {"enabled": False}, "externalRedis": {"existingSecret": "cache", "key": "url"}})
    assert env_of(container(custom, "gateway"))["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "cache",
                                                                                            "key": "url"}


def test_without_redis_the_gateway_counts_alone_and_notes_warn_when_replicas_multiply_the_limits() -> None:
    values = {"redis": {"enabled": False}}
    objects = render(values)
    assert "REDIS_URL" not in env_of(container(objects, "gateway"))
    assert NO_REDIS_WARNING in notes(values)
    assert NO_REDIS_WARNING not in notes({})
    assert NO_REDIS_WARNING not in notes({**values, "externalRedis": {"existingSecret": "cache"}})
    one_replica = {**values, "gateway": {"replicas": 1, "autoscaling": {"enabled": False}}}
    assert NO_REDIS_WARNING not in notes(one_replica)  # one process: its count is the count


@pytest.mark.parametrize("value_set", ["default", "gpu"])
def test_redis_is_one_node_that_keeps_nothing(value_set: str) -> None:
    redis = one(render_set(value_set), "StatefulSet", REDIS)
    assert redis["spec"]["replicas"] == 1
    assert "volumeClaimTemplates" not in redis["spec"]
    spec = pod_spec(redis)
    item = spec["containers"][0]
    command = item["command"]
    assert command[:2] == ["redis-server", "/etc/redis/redis.conf"]
    assert command[command.index("--save") + 1] == "" and command[command.index("--appendonly") + 1] == "no"
    assert item["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsUser"] >= 10000
    assert all("persistentVolumeClaim" not in v for v in spec["volumes"])
    assert item["env"] == [{"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {"name": REDIS, "key": "password"}}}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "PONG" in " ".join(item[probe]["exec"]["command"]), probe  # NOAUTH would exit 0 too
    image = item["image"]
    assert image.startswith("redis:") and image.removeprefix("redis:")[0].isdigit()


def test_redis_takes_its_memory_cap_and_scheduling_from_values() -> None:
    values = {"redis": {"maxmemory": "64mb", "nodeSelector": {"pool": "system"},
                        "image": {"tag": "7.2.5-alpine", "digest": "sha256:" + "b" * 64}}}
    objects = render(values)
    assert "maxmemory 64mb" in named(objects, "Secret")[REDIS]["stringData"]["redis.conf"].splitlines()
    spec = pod_spec(one(objects, "StatefulSet", REDIS))
    assert spec["nodeSelector"] == {"pool": "system"}
    assert spec["containers"][0]["image"] == f"redis:7.2.5-alpine@sha256:{'b' * 64}"
