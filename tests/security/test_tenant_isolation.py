"""Tenants cannot see each other on any /v1 route: the routes are read from the app itself, so a
new route is checked as soon as it exists. Tenant B, given tenant A's real ids, gets 404 on
every route that takes an id (not 403: an id says nothing about whether it exists); no answer to
B ever contains A's ids or A's prompt; and a route this test does not know fails it until its
isolation is decided."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from starlette.routing import Route

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.security.conftest import auth

SECRET_PROMPT = "a lighthouse painted in team A's secret colours"
BOUNDARY = "tenant-boundary"
# Routes without an id in their path, and what they are for: each is exercised below.
WITHOUT_IDS = {
    ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/v1/documents"), ("GET", "/v1/documents"),
    ("POST", "/v1/search"), ("POST", "/v1/jobs/images"), ("POST", "/v1/jobs/text"), ("GET", "/v1/jobs"),
}


def _walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, into included routers (which this FastAPI keeps as wrappers)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _walk(included.routes, prefix + getattr(getattr(route, "include_context", None), "prefix", ""))
        elif isinstance(route, Route):
            yield from ((method, prefix + route.path) for method in route.methods or ())


def v1_routes() -> set[tuple[str, str]]:
    """Every /v1 route: the app's routes walked, and its OpenAPI document (the same, by another road)."""
    app = create_app(GatewaySettings(gateway_api_keys=[]))
    paths = app.openapi()["paths"]
    documented = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    return {(m, p) for m, p in {*_walk(app.routes), *documented} if p.startswith("/v1/") and m != "HEAD"}


async def _seed(client: httpx.AsyncClient) -> dict[str, str]:
    """Tenant A's document and job (with an Idempotency-Key): what B will go looking for."""
    form = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a-notes.txt"\r\n\r\n'
            f"Team A's notes.\r\n--{BOUNDARY}--\r\n").encode()
    document = await client.post("/v1/documents", content=form, headers={
        **auth("team-a"), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert document.status_code == 202, document.text
    job = await client.post("/v1/jobs/images", json={"prompt": SECRET_PROMPT, "size": "64x64", "steps": 1},
                            headers={**auth("team-a"), "Idempotency-Key": "shared-key"})
    assert job.status_code == 202, job.text
    return {"document_id": document.json()["id"], "job_id": job.json()["id"], "index": "0"}


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def _masked(text: str, ids: dict[str, str]) -> str:
    for name in ("document_id", "job_id"):
        text = text.replace(ids[name], "<id>")
    return text


def _leaks(reply: httpx.Response, seeded: dict[str, str]) -> bool:
    return any(secret in reply.text for secret in (seeded["document_id"], seeded["job_id"], SECRET_PROMPT))


async def test_no_v1_route_shows_one_tenant_another_tenants_data(gateway) -> None:
    url = gateway()
    routes = v1_routes()
    undecided = {r for r in routes if "{" not in r[1]} - WITHOUT_IDS
    assert not undecided, f"new routes: decide and test how they keep tenants apart: {sorted(undecided)}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        seeded = await _seed(client)
        checked = 0
        unknown_ids = {"document_id": str(uuid.uuid4()), "job_id": str(uuid.uuid4()), "index": "0"}
        for method, path in sorted(r for r in routes if "{" in r[1]):
            reply = await client.request(method, _fill(path, seeded), headers=auth("team-b"))
            unknown = await client.request(method, _fill(path, unknown_ids), headers=auth("team-b"))
            assert reply.status_code == 404, (method, path, reply.status_code, reply.text)
            # Exactly what an id that exists nowhere gets (the id it was asked about aside).
            assert _masked(reply.text, seeded) == _masked(unknown.text, unknown_ids), (method, path)
            checked += 1
        assert checked >= 5

        # The routes without ids: B sees nothing of A's, and A's Idempotency-Key is not B's.
        b = auth("team-b")
        for reply in (await client.get("/v1/documents", headers=b), await client.get("/v1/jobs", headers=b)):
            assert reply.status_code == 200 and not _leaks(reply, seeded), reply.text
        asked = (await client.get(f"/v1/jobs?ids={seeded['job_id']}", headers=b)).json()["data"]
        assert asked == [{"id": seeded["job_id"], "object": "job", "status": "not_found"}]
        replayed = await client.post("/v1/jobs/images", json={"prompt": SECRET_PROMPT, "size": "64x64", "steps": 1},
                                     headers={**b, "Idempotency-Key": "shared-key"})
        assert replayed.status_code == 202 and replayed.json()["id"] != seeded["job_id"], replayed.text
        # A still has everything: nothing B did reached it.
        a = auth("team-a")
        assert (await client.get(f"/v1/documents/{seeded['document_id']}", headers=a)).status_code == 200
        job = (await client.get(f"/v1/jobs/{seeded['job_id']}", headers=a)).json()
        assert job["status"] == "queued"
        listed = await client.get("/v1/jobs", headers=a)
        assert seeded["job_id"] in listed.text and replayed.json()["id"] not in listed.text
