"""OpenAI response shapes the gateway writes itself: retrieval-only answers and the sources chunk."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from gateway.chat.context import ChatContext
from gateway.chat.excerpts import excerpt
from gateway.chat.sources import Source

RETRIEVAL_ONLY_MODEL = "retrieval-only"
# Characters quoted per source: a whole document chunk, or the sentences of a page that match best.
PASSAGE_CHARS = 1200
# Characters of each page a retrieval-only chat reads (asks the scraper for) to find those sentences.
RETRIEVAL_ONLY_PAGE_CHARS = 50_000
NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _passage(source: Source, question: str) -> str:
    if source.kind == "url":
        where = f"{source.title} <{source.url}>" if source.title != source.url else f"<{source.url}>"
    else:
        page = f", page {source.page}" if source.page else ""
        score = f" (score {source.score:.2f})" if source.score is not None else ""
        where = f"{source.document_name}{page}{score}"
    return f"[{source.id}] {where}\n{excerpt(source.text, question, PASSAGE_CHARS)}"


def retrieval_only_answer(context: ChatContext, question: str = "") -> str:
    """The cited passages, clearly labelled as retrieved text rather than a generated answer.

    Each passage is quoted whole when short, else by its sentences that best match `question`.
    """
    label = "Retrieval-only mode: no language model is configured, so this is not a generated answer."
    unread = "".join(f"\n- {url} ({why})" for url, why in context.unread)
    unread = f"\n\nWeb pages that could not be read:{unread}" if unread else ""
    if not context.sources:
        missing = f" (unavailable: {', '.join(context.unavailable)})" if context.unavailable else ""
        return f"{label}\nNo passages were retrieved for this question{missing}.{unread}"
    passages = "\n\n".join(_passage(s, question) for s in context.sources)
    return f"{label}\nRetrieved passages:\n\n{passages}{unread}"


def sources_fields(context: ChatContext) -> dict[str, Any]:
    return {"sources": [s.to_wire() for s in context.sources], "sources_unavailable": list(context.unavailable)}


def completion_body(content: str, model: str, context: ChatContext) -> dict[str, Any]:
    return {
        "id": new_completion_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                     "logprobs": None}],
        "usage": dict(NO_USAGE),
        **sources_fields(context),
    }


def chunk(completion_id: str, model: str, created: int, choices: Sequence[dict[str, Any]],
          **extra: Any) -> dict[str, Any]:
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": list(choices), **extra}


def retrieval_only_chunks(content: str, context: ChatContext, include_usage: bool = False) -> list[dict[str, Any]]:
    """The answer as a stream: role, content, finish, then the sources chunk (with usage if asked)."""
    cid, created, model = new_completion_id(), int(time.time()), RETRIEVAL_ONLY_MODEL
    usage = {"usage": dict(NO_USAGE)} if include_usage else {}
    opening = {"role": "assistant", "content": ""}
    return [
        chunk(cid, model, created, [{"index": 0, "delta": opening, "finish_reason": None}]),
        chunk(cid, model, created, [{"index": 0, "delta": {"content": content}, "finish_reason": None}]),
        chunk(cid, model, created, [{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        chunk(cid, model, created, [], **usage, **sources_fields(context)),
    ]
