"""The gateway from outside: only /v1, uploads up to the gateway's own limit, streams kept open."""

from __future__ import annotations

import re

from tests.deploy.chart import RELEASE, container, env_of, named, one, render, render_set

MEBIBYTE = 1024 * 1024


def test_the_ingress_routes_only_v1_to_the_gateway() -> None:
    ingress = one(render_set("external"), "Ingress", f"{RELEASE}-gateway")
    (rule,) = ingress["spec"]["rules"]
    paths = rule["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/v1", "Prefix")]  # /metrics stays inside
    assert paths[0]["backend"]["service"] == {"name": f"{RELEASE}-gateway", "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"hosts": ["genai.example.com"], "secretName": "genai-tls"}]


def test_the_ingress_lets_every_upload_the_gateway_accepts_through_and_keeps_streams_open() -> None:
    for upload_max in ("52428800", "209715200"):
        objects = render({"ingress": {"enabled": True}, "gateway": {"env": {"UPLOAD_MAX_BYTES": upload_max}}})
        annotations = one(objects, "Ingress", f"{RELEASE}-gateway")["metadata"]["annotations"]
        size = re.fullmatch(r"(\d+)m", annotations["nginx.ingress.kubernetes.io/proxy-body-size"])
        assert size and int(size[1]) * MEBIBYTE > int(upload_max)  # the gateway answers 413 itself
        assert env_of(container(objects, "gateway"))["UPLOAD_MAX_BYTES"]["value"] == upload_max
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
        assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # SSE reaches the client as sent


def test_annotations_from_values_are_kept() -> None:
    objects = render({"ingress": {"enabled": True, "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"}}})
    annotations = one(objects, "Ingress", f"{RELEASE}-gateway")["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"


def test_the_http_route_routes_only_v1_without_a_request_timeout() -> None:
    route = one(render_set("keda-off"), "HTTPRoute", f"{RELEASE}-gateway")
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    assert rule["backendRefs"] == [{"name": f"{RELEASE}-gateway", "port": 8000}]
    assert rule["timeouts"]["request"] == "0s"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]


def test_nothing_is_exposed_unless_asked() -> None:
    objects = render_set("default")
    assert not named(objects, "Ingress") and not named(objects, "HTTPRoute")
    services = named(objects, "Service")
    assert all(s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in services.values())
