"""The chat lane (`gateway.chat.lane`) serves POST /v1/chat/completions ahead of the declared
FastAPI route: every request answers exactly as the declared route answers it, refusals included."""

from __future__ import annotations

import json
from typing import Any

from starlette.routing import Route

from gateway.chat.lane import ChatLane

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "genai": {"rag": False, "scrape": False}}
JSON = {"Content-Type": "application/json"}
CASES: list[tuple[bytes, dict[str, str]]] = [
    (json.dumps(CHAT).encode(), JSON),
    (json.dumps(CHAT).encode(), {"Content-Type": "application/vnd.example+json; charset=utf-8"}),
    (b"", JSON),  # no body
    (json.dumps(CHAT).encode(), {"Content-Type": "text/plain"}),  # not JSON by its type
    (json.dumps(CHAT).encode(), {}),  # no type (curl -d sends a form type; a bare client none)
    (b"[1, 2]", JSON),  # JSON, not an object
    (b'{"model": "m", "messages": [', JSON),  # broken JSON
    (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', JSON),
    (b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "genai": {"top_k": 99}}', JSON),
    (b'{"messages": [{"role": "user", "content": "hi"}], "n": 3}', JSON),
]


def _comparable(reply: Any) -> tuple[int, Any]:
    body = reply.json()
    if reply.status_code == 200:  # generated per answer
        body = {k: v for k, v in body.items() if k not in ("id", "created")}
    return reply.status_code, body


async def test_the_lane_answers_as_the_declared_route(chat_gateway, fake_llm) -> None:
    gateway = await chat_gateway(gateway_api_keys=["sk-one"])
    keyed = {"Authorization": "Bearer sk-one"}
    requests = [(body, {**headers, **keyed}) for body, headers in CASES]
    requests += [(CASES[0][0], {**JSON, "Authorization": "Bearer sk-other"}), (CASES[0][0], JSON)]

    async def answers() -> list[tuple[int, Any]]:
        return [_comparable(await gateway.client.post("/v1/chat/completions", content=body, headers=headers))
                for body, headers in requests]

    through_lane = await answers()
    routes = gateway.app.router.routes
    lane = next(r for r in routes if isinstance(r, Route) and isinstance(r.app, ChatLane))
    routes.remove(lane)  # FastAPI's own handling of the declared route
    declared = await answers()
    assert through_lane == declared
    statuses = [status for status, _ in through_lane]
    assert statuses == [200, 200, 422, 422, 422, 422, 400, 422, 422, 400, 401, 401], through_lane
