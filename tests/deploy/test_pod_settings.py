"""Each pod gets exactly the settings its service reads, the ones it needs in a cluster, and
references (Secrets, volumes, peers) that exist. The settings classes are read at test time, so a
renamed setting fails here until the chart follows it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from imagegen.settings import ImagegenSettings
from ingest.settings import IngestSettings
from retriever.settings import RetrieverSettings
from scraper.settings import ScraperSettings
from tests.deploy.chart import (
    NAMESPACE,
    RELEASE,
    SERVICES,
    VALUE_SETS,
    component,
    container,
    env_of,
    named,
    pod_spec,
    render_set,
    values_of,
    workloads,
)

SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings, "scraper": ScraperSettings, "retriever": RetrieverSettings,
    "ingest": IngestSettings, "imagegen": ImagegenSettings,
}
# Variables read by libraries, not by our settings (Hugging Face caches and offline switches).
LIBRARY_VARIABLES = {
    "retriever": {"HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"},
    "imagegen": {"HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"},
}
# Settings a service cannot do without in a cluster (listen beyond loopback, reach its peers and stores).
NEEDED = {
    "gateway": {"GATEWAY_HOST", "GATEWAY_PORT", "DATABASE_URL", "AMQP_URL", "BLOB_STORE_URL", "SCRAPER_ADDR",
                "RETRIEVER_ADDR", "SHUTDOWN_GRACE_SECONDS", "GATEWAY_MIGRATE_ON_START"},
    "scraper": {"SCRAPER_HOST", "SCRAPER_PORT", "SCRAPER_METRICS_PORT", "SHUTDOWN_GRACE_SECONDS"},
    "retriever": {"RETRIEVER_HOST", "RETRIEVER_PORT", "RETRIEVER_METRICS_PORT", "SHUTDOWN_GRACE_SECONDS"},
    "ingest": {"INGEST_METRICS_HOST", "INGEST_METRICS_PORT", "AMQP_URL", "RETRIEVER_ADDR", "BLOB_STORE_URL",
               "SHUTDOWN_GRACE_SECONDS"},
    "imagegen": {"IMAGEGEN_METRICS_HOST", "IMAGEGEN_METRICS_PORT", "AMQP_URL", "BLOB_STORE_URL", "IMAGEGEN_MODEL",
                 "SHUTDOWN_GRACE_SECONDS"},
}
LISTEN_HOSTS = {"gateway": "GATEWAY_HOST", "scraper": "SCRAPER_HOST", "retriever": "RETRIEVER_HOST",
                "ingest": "INGEST_METRICS_HOST", "imagegen": "IMAGEGEN_METRICS_HOST"}
# Gateway settings renamed by the code-health issue (GATEWAY_SCRAPE_* / GATEWAY_RETRIEVE_*). The
# chart uses the new names already; while the settings still carry the old ones (that issue not
# merged) these five are the only unknown names the gateway's pod may have. Once the old names are
# gone the check is the plain one, so names that differ from these fail here.
RENAMED_GATEWAY_SETTINGS = {"GATEWAY_SCRAPE_DEADLINE_SECONDS", "GATEWAY_SCRAPE_MAX_URLS",
                            "GATEWAY_SCRAPE_MAX_CHARS_PER_PAGE", "GATEWAY_RETRIEVE_DEADLINE_SECONDS",
                            "GATEWAY_RETRIEVAL_ONLY_MAX_CONCURRENCY"}
RENAMES_PENDING = "max_urls_per_message" in GatewaySettings.model_fields


def setting_names(service: str) -> set[str]:
    """The environment variables a service's settings class reads (field name = variable name)."""
    return {name.upper() for name in SETTINGS[service].model_fields}


@pytest.mark.parametrize("value_set", VALUE_SETS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_in_a_pod_is_a_setting_of_that_service(value_set: str, service: str) -> None:
    env = env_of(container(render_set(value_set), service))
    unknown = set(env) - setting_names(service) - LIBRARY_VARIABLES.get(service, set())
    if service == "gateway" and RENAMES_PENDING:
        others = unknown - RENAMED_GATEWAY_SETTINGS
        assert not others, f"gateway does not read {sorted(others)}"
        pytest.xfail("the gateway setting renames of the code-health issue are not merged yet")
    assert not unknown, f"{service} does not read {sorted(unknown)}"


@pytest.mark.parametrize("value_set", VALUE_SETS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_a_service_needs_in_a_cluster_is_set(value_set: str, service: str) -> None:
    objects = render_set(value_set)
    env = env_of(container(objects, service))
    assert NEEDED[service] <= set(env), sorted(NEEDED[service] - set(env))
    assert env[LISTEN_HOSTS[service]]["value"] == "0.0.0.0"  # probes and peers reach it from outside the pod
    if service == "retriever":
        assert {"QDRANT_URL", "QDRANT_PATH"} & set(env), "retriever has no vector store"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_the_gateway_has_an_llm_exactly_when_one_is_configured(value_set: str) -> None:
    values = values_of(value_set)
    env = env_of(container(render_set(value_set), "gateway"))
    vllm_on = values.get("vllm", {}).get("enabled", True)
    external = values.get("llm", {}).get("baseUrl")
    if vllm_on:
        assert env["LLM_BASE_URL"]["value"] == f"http://{RELEASE}-vllm.{NAMESPACE}.svc.cluster.local:8000/v1"
        assert env["LLM_MODEL"]["value"] == values.get("vllm", {}).get("servedModelName", "qwen2.5-7b-instruct")
    elif external:
        assert env["LLM_BASE_URL"]["value"] == external
    else:  # retrieval-only: a dangling default URL would make every chat a 503
        assert not {"LLM_BASE_URL", "LLM_API_KEY", "LLM_MODEL"} & set(env)


def test_vllm_and_the_gateway_share_one_api_key() -> None:
    objects = render_set("default")
    gateway = env_of(container(objects, "gateway"))["LLM_API_KEY"]["valueFrom"]["secretKeyRef"]
    vllm = env_of(container(objects, "vllm"))["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert gateway == vllm


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_credentials_come_from_secrets_only(value_set: str) -> None:
    for workload in workloads(render_set(value_set)):
        for spec in pod_spec(workload)["containers"]:
            for name, entry in env_of(spec).items():
                if any(word in name for word in ("URL", "KEY", "PASSWORD", "TOKEN")) and "value" in entry:
                    value = entry["value"]
                    assert not urlsplit(value).password, f"{workload['metadata']['name']}: {name} carries a password"
                    assert not name.endswith(("_KEY", "_KEYS", "PASSWORD", "TOKEN")), f"{name} as a plain value"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_reference_in_a_pod_resolves(value_set: str) -> None:
    """Secrets (with the key), claims and service accounts exist, or are named existing ones in values."""
    objects = render_set(value_set)
    values = values_of(value_set)
    existing = _existing_names(values)
    secrets = {name: set(s.get("stringData", {})) | set(s.get("data", {}))
               for name, s in named(objects, "Secret").items()}
    claims = set(named(objects, "PersistentVolumeClaim"))
    accounts = set(named(objects, "ServiceAccount"))
    for workload in workloads(objects):
        spec = pod_spec(workload)
        where = workload["metadata"]["name"]
        if "serviceAccountName" in spec:
            assert spec["serviceAccountName"] in accounts, where
        templates = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert claim in claims or claim in existing, f"{where}: claim {claim}"
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, where
        for spec_container in spec["containers"] + spec.get("initContainers", []):
            for mount in spec_container.get("volumeMounts", []):
                assert mount["name"] in {v["name"] for v in spec.get("volumes", [])} | templates, f"{where}: {mount}"
            for name, entry in env_of(spec_container).items():
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in existing:
                    assert ref["key"] in secrets.get(ref["name"], set()), f"{where}: {name} from {ref}"


def _existing_names(values: dict[str, Any]) -> set[str]:
    """Names of Secrets and claims the values say exist already."""
    found: set[str] = set()

    def walk(tree: Any) -> None:
        if isinstance(tree, dict):
            for key, value in tree.items():
                if key in ("existingSecret", "existingClaim", "hfTokenSecret") and value:
                    found.add(value)
                walk(value)

    walk(values)
    return found


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_peers_are_dialled_through_headless_services_on_their_ports(value_set: str) -> None:
    objects = render_set(value_set)
    services = named(objects, "Service")
    for client, variable, peer in (("gateway", "SCRAPER_ADDR", "scraper"), ("gateway", "RETRIEVER_ADDR", "retriever"),
                                   ("ingest", "RETRIEVER_ADDR", "retriever")):
        target = env_of(container(objects, client))[variable]["value"]
        assert target.startswith("dns:///"), target  # resolved to every pod, balanced round-robin
        host, port = target.removeprefix("dns:///").rsplit(":", 1)
        service = services[host.split(".")[0]]
        assert host == f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
        assert service["spec"].get("clusterIP") == "None", f"{peer} behind a virtual IP pins each client to one pod"
        assert int(port) in {p["port"] for p in service["spec"]["ports"]}
        assert component(service) == peer


def test_scraper_and_retriever_do_not_need_the_broker() -> None:
    objects = render_set("default")
    for service in ("scraper", "retriever"):
        assert "AMQP_URL" not in env_of(container(objects, service))
