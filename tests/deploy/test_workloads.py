"""Workloads that a cluster schedules, probes, stops and upgrades the way the services need."""

from __future__ import annotations

import re
from typing import Any

import helm_python
import pytest

from gateway.settings import GatewaySettings
from genai_common.amqp import MINIMUM_VERSION
from genai_common.amqp.broker_version import parse_version
from tests.deploy.chart import (
    DEPLOYMENT_KINDS,
    NAMESPACE,
    RELEASE,
    SERVICES,
    VALUE_SETS,
    component,
    container,
    deployment,
    deployments,
    env_of,
    named,
    one,
    pod_spec,
    render,
    render_set,
    uses_gpu,
    values_of,
    workloads,
)

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
SCALERS = ("HorizontalPodAutoscaler", "ScaledObject")


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_container_has_resources_probes_and_the_restricted_security_context(value_set: str) -> None:
    for workload in workloads(render_set(value_set)):
        spec = pod_spec(workload)
        where = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert isinstance(spec["securityContext"]["runAsUser"], int), where  # numeric: checked before start
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        for item in spec["containers"] + spec.get("initContainers", []):
            context = item["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(item["resources"]["requests"]), where
            assert "memory" in item["resources"]["limits"], where
            assert not item["image"].endswith(":latest") and ":" in item["image"], where
        for item in spec["containers"]:
            mounts = {m["mountPath"] for m in item.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: no writable /tmp under a read-only root"
            if workload["kind"] != "Job":
                assert set(PROBES) <= set(item), f"{where}: {set(PROBES) - set(item)}"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_a_stopping_pod_leaves_its_endpoints_first_and_gets_its_shutdown_grace(value_set: str) -> None:
    objects = render_set(value_set)
    for workload in deployments(objects).values():
        spec = pod_spec(workload)
        item = spec["containers"][0]
        pause = item["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pause >= 1, workload["metadata"]["name"]
        env = env_of(item)
        if "SHUTDOWN_GRACE_SECONDS" in env:
            grace = float(env["SHUTDOWN_GRACE_SECONDS"]["value"])
            assert spec["terminationGracePeriodSeconds"] >= pause + grace + 15, workload["metadata"]["name"]


def test_the_grace_period_follows_the_one_shutdown_value() -> None:
    objects = render({"ingest": {"shutdownGraceSeconds": 300}})
    spec = pod_spec(deployment(objects, "ingest"))
    assert env_of(spec["containers"][0])["SHUTDOWN_GRACE_SECONDS"]["value"] == "300"
    assert spec["terminationGracePeriodSeconds"] == 5 + 300 + 15


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_an_autoscaled_workload_does_not_render_replicas(value_set: str) -> None:
    """A `replicas` in the Deployment would reset the autoscaler's count on every upgrade."""
    objects = render_set(value_set)
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in objects if o["kind"] in SCALERS}
    for name, workload in deployments(objects).items():
        assert ("replicas" in workload["spec"]) == (name not in scaled), name


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_gpu_workloads_land_on_the_gpu_pool_and_never_surge(value_set: str) -> None:
    values = values_of(value_set)
    gpu = [d for d in deployments(render_set(value_set)).values() if uses_gpu(pod_spec(d)["containers"][0])]
    expected = {s for s in ("imagegen", "vllm") if values.get(s, {}).get("enabled", True)}
    if value_set == "local":
        expected = set()  # CPU cluster: imagegen runs tiny-random without a GPU
    assert {component(d) for d in gpu} == expected
    for workload in gpu:
        spec = pod_spec(workload)
        where = workload["metadata"]["name"]
        assert spec["nodeSelector"] and spec["tolerations"] and spec["runtimeClassName"], where
        assert workload["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}, where


def test_vllm_has_time_to_load_a_large_model_and_writable_caches() -> None:
    objects = render_set("gpu")
    workload = deployment(objects, "vllm")
    spec = pod_spec(workload)
    item = spec["containers"][0]
    startup = item["startupProbe"]
    startup_seconds = startup["periodSeconds"] * startup["failureThreshold"]
    assert startup_seconds >= 1800
    assert workload["spec"]["progressDeadlineSeconds"] > startup_seconds  # the rollout outlives the load
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in item["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    env = env_of(item)
    writable = {path: name for path, name in mounts.items() if not _read_only(item, path)}
    caches = ("HOME", "HF_HOME", "XDG_CACHE_HOME", "TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "VLLM_CACHE_ROOT")
    for variable in caches:
        path = env[variable]["value"]
        assert any(path == m or path.startswith(m + "/") for m in writable), f"{variable}={path} is not writable"
    assert "persistentVolumeClaim" in volumes[mounts["/models"]]  # the model survives restarts
    args = item["args"]
    values = values_of("gpu")["vllm"]
    assert args[args.index("--served-model-name") + 1] == values["servedModelName"]
    assert args[args.index("--tensor-parallel-size") + 1] == str(values["tensorParallelSize"])
    assert args[args.index("--max-model-len") + 1] == str(values["maxModelLen"])
    assert "--enable-prefix-caching" in args
    assert spec["securityContext"]["runAsUser"] >= 10000  # not root, as the upstream image would be


def _read_only(item: dict[str, Any], path: str) -> bool:
    return any(m["mountPath"] == path and m.get("readOnly") for m in item["volumeMounts"])


def test_imagegen_runs_the_fp16_variant_on_the_gpu_and_tiny_random_locally() -> None:
    gpu = env_of(container(render_set("gpu"), "imagegen"))
    assert (gpu["IMAGEGEN_VARIANT"]["value"], gpu["IMAGEGEN_DTYPE"]["value"]) == ("fp16", "float16")
    local = env_of(container(render_set("local"), "imagegen"))
    assert local["IMAGEGEN_MODEL"]["value"] == "tiny-random"
    assert "IMAGEGEN_VARIANT" not in local


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_labels_carry_the_image_version_and_a_chart_bump_restarts_nothing(value_set: str) -> None:
    for workload in workloads(render_set(value_set)):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        image = pod_spec(workload)["containers"][0]["image"]
        tag = image.split("@")[0].rsplit(":", 1)[1]
        assert labels["app.kubernetes.io/version"] == tag, workload["metadata"]["name"]
        assert not any(key.startswith("helm.sh/") for key in labels), workload["metadata"]["name"]


@pytest.mark.parametrize("dependency", ["rabbitmq", "qdrant", "postgresql", "redis"])
def test_built_in_dependencies_run_pinned_release_images(dependency: str) -> None:
    image = pod_spec(one(render_set("default"), "StatefulSet", f"{RELEASE}-{dependency}"))["containers"][0]["image"]
    repository, _, tag = image.partition(":")
    assert repository and tag.lstrip("v")[:1].isdigit(), image  # a version, never latest or a moving major


def test_an_image_is_pulled_by_digest_when_one_is_given() -> None:
    digest = "sha256:" + "a" * 64
    image = container(render({"gateway": {"image": {"tag": "1.2.3", "digest": digest}}}), "gateway")["image"]
    assert image == f"ghcr.io/genai/gateway:1.2.3@{digest}"


def test_every_object_name_is_scoped_to_the_release() -> None:
    for release in ("prod", "genai-blue"):
        objects = render(release=release)
        prefix = release if "genai" in release else f"{release}-genai"
        for obj in objects:
            assert obj["metadata"]["name"].startswith(prefix + "-"), (release, obj["kind"], obj["metadata"]["name"])
            assert obj["metadata"]["namespace"] == NAMESPACE


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_workload_that_can_have_two_replicas_has_a_disruption_budget(value_set: str) -> None:
    objects = render_set(value_set)
    budgets = {component(p): p for p in objects if p["kind"] == "PodDisruptionBudget"}
    scalers = {o["spec"]["scaleTargetRef"]["name"]: o for o in objects if o["kind"] in SCALERS}
    for workload in (o for o in objects if o["kind"] in (*DEPLOYMENT_KINDS, "StatefulSet")):
        name = workload["metadata"]["name"]
        scaler = scalers.get(name)
        if scaler:
            most = scaler["spec"].get("maxReplicas") or scaler["spec"].get("maxReplicaCount")
        else:
            most = workload["spec"]["replicas"]
        assert (component(workload) in budgets) == (most > 1), name
    for budget in budgets.values():
        assert budget["spec"]["maxUnavailable"] == 1


def test_migrations_run_once_per_release_in_a_hook_job() -> None:
    objects = render_set("default")
    job = one(objects, "Job", f"{RELEASE}-migrations")
    hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
    assert hooks == {"post-install", "pre-upgrade"}  # the built-in PostgreSQL exists only after install
    assert pod_spec(job)["containers"][0]["command"] == ["python", "-m", "gateway.migrate"]
    assert pod_spec(job)["containers"][0]["image"] == container(objects, "gateway")["image"]
    gateway = container(objects, "gateway")
    assert env_of(gateway)["GATEWAY_MIGRATE_ON_START"]["value"] == "false"
    # A replica waits for the Job before it serves: its startup probe must outlast that wait.
    startup = gateway["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > GatewaySettings().gateway_schema_wait_seconds
    external = one(render_set("external"), "Job", f"{RELEASE}-migrations")
    assert set(external["metadata"]["annotations"]["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}


def test_sqlite_migrates_at_start_on_a_volume_of_its_own() -> None:
    objects = render_set("embedded")
    assert not [o for o in objects if o["kind"] == "Job"]
    env = env_of(container(objects, "gateway"))
    assert env["GATEWAY_MIGRATE_ON_START"]["value"] == "true"
    database = env["DATABASE_URL"]["value"].removeprefix("sqlite+aiosqlite:///")
    mounts = {m["mountPath"]: m["name"] for m in container(objects, "gateway")["volumeMounts"]}
    assert any(database.startswith(path + "/") and name == "state" for path, name in mounts.items())
    retriever = env_of(container(objects, "retriever"))
    assert retriever["QDRANT_PATH"]["value"].startswith("/var/lib/genai/")


@pytest.mark.parametrize(("values", "reason"), [
    ({"qdrant": {"enabled": False}}, "retriever: more than one replica needs a Qdrant server"),
    ({"qdrant": {"enabled": False}, "retriever": {"autoscaling": {"enabled": False}, "replicas": 2}},
     "retriever: more than one replica"),
    ({"postgresql": {"enabled": False}}, "gateway: more than one replica needs PostgreSQL"),
    ({"rabbitmq": {"enabled": False}}, "externalRabbitmq.existingSecret"),
    ({"rabbitmq": {"replicas": 2}}, "rabbitmq.replicas"),
    ({"qdrant": {"replicas": 1, "replicationFactor": 2}}, "replicationFactor"),
    ({"vllm": {"modelCache": {"accessMode": "ReadWriteOnce"}}}, "ReadWriteOnce model cache"),
    ({"vllm": {"autoscaling": {"minReplicas": 0}}}, "minReplicas"),
    ({"gateway": {"env": {"DATABASE_URL": "sqlite://"}}}, "set by the chart itself"),
])
def test_configurations_that_cannot_work_fail_with_the_reason(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(helm_python.HelmError, match=reason):
        render(values)


def test_the_embedded_stores_work_with_one_replica() -> None:
    objects = render({"qdrant": {"enabled": False}, "postgresql": {"enabled": False},
                      "retriever": {"autoscaling": {"enabled": False}, "replicas": 1},
                      "gateway": {"autoscaling": {"enabled": False}, "replicas": 1}})
    for service in ("gateway", "retriever"):  # a ReadWriteOnce volume: the old pod goes before the new one
        assert deployment(objects, service)["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_rabbitmq_forms_a_cluster_when_asked_and_qdrant_a_distributed_one() -> None:
    objects = render_set("gpu")
    rabbit = named(objects, "Secret")[f"{RELEASE}-rabbitmq"]["stringData"]["rabbitmq.conf"]
    nodes = [line for line in rabbit.splitlines() if line.startswith("cluster_formation.classic_config.nodes.")]
    assert len(nodes) == 3
    assert one(objects, "StatefulSet", f"{RELEASE}-rabbitmq")["spec"]["replicas"] == 3
    qdrant = one(objects, "StatefulSet", f"{RELEASE}-qdrant")
    assert env_of(pod_spec(qdrant)["containers"][0])["QDRANT__CLUSTER__ENABLED"]["value"] == "true"
    retriever = env_of(container(objects, "retriever"))
    assert (retriever["QDRANT_SHARD_NUMBER"]["value"], retriever["QDRANT_REPLICATION_FACTOR"]["value"]) == ("6", "2")
    single = render_set("default")
    assert "cluster_formation" not in named(single, "Secret")[f"{RELEASE}-rabbitmq"]["stringData"]["rabbitmq.conf"]


def test_rabbitmq_serves_management_and_prometheus() -> None:
    secret = named(render_set("default"), "Secret")[f"{RELEASE}-rabbitmq"]["stringData"]
    assert secret["enabled_plugins"] == "[rabbitmq_management,rabbitmq_prometheus]."


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_service_image_is_built_by_skaffold(value_set: str) -> None:
    objects = render_set(value_set)
    for service in SERVICES:
        assert container(objects, service)["image"].startswith(f"ghcr.io/genai/{service}:")


# The value sets that run the built-in broker (with an external one, the services check its
# version at connect).
BUILT_IN_BROKER_SETS = [name for name in VALUE_SETS if values_of(name).get("rabbitmq", {}).get("enabled", True)]


@pytest.mark.parametrize("value_set", BUILT_IN_BROKER_SETS)
def test_rabbitmq_runs_a_pinned_release_at_least_the_minimum_our_queues_need(value_set: str) -> None:
    """A floating tag (`latest`, `4`, `management`) would change the broker under the queues'
    arguments at the next pull; the services refuse a broker older than MINIMUM_VERSION at connect."""
    broker = one(render_set(value_set), "StatefulSet", f"{RELEASE}-rabbitmq")
    checked = 0
    for spec in pod_spec(broker)["containers"] + pod_spec(broker).get("initContainers", []):
        if not spec["image"].startswith("rabbitmq:"):
            continue
        tag = spec["image"].removeprefix("rabbitmq:").split("@")[0]
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{spec['name']} runs rabbitmq:{tag}, not an exact release"
        assert parse_version(tag) >= MINIMUM_VERSION  # type: ignore[operator]
        checked += 1
    assert checked, "no rabbitmq container found"
