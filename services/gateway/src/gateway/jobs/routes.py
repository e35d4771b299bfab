"""HTTP edge of the jobs feature: translate requests to the domain and jobs back to JSON."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from genai_common.errors import NotFound
from gateway.errors import APIError
from gateway.jobs.models import Kind, Status
from gateway.jobs.schemas import ImageJobCreate, TextJobCreate, job_json, not_found_json
from gateway.jobs.service import ImageRequest, InvalidField, JobService, PromptBlocked, Submission, TextRequest
from gateway.jobs.sse import job_events
from gateway.jobs.store import IdempotencyMismatch

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

MAX_IDS = 100
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)]
JobId = Annotated[str, Path(min_length=1, max_length=64)]


def _service(request: Request) -> JobService:
    return request.app.state.jobs


async def _submitting(call: Awaitable[Submission]) -> Submission:
    """Domain refusals -> HTTP: blocked prompt 400, limit 422, reused idempotency key 422."""
    try:
        return await call
    except PromptBlocked as exc:
        raise APIError(400, exc.message, code="prompt_blocked", param=exc.field) from None
    except InvalidField as exc:
        raise APIError(422, exc.message, code="validation_error", param=exc.field) from None
    except IdempotencyMismatch as exc:
        raise APIError(422, exc.message, code="idempotency_key_reused", param="Idempotency-Key") from None


@router.post("/images", status_code=202)
async def create_image_job(body: ImageJobCreate, request: Request, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    submission = await _submitting(_service(request).submit_image(ImageRequest(**body.model_dump()), idempotency_key))
    job = submission.jobs[0]
    return JSONResponse(job_json(job), status_code=202 if submission.created else 200,
                        headers={"Location": f"/v1/jobs/{job.id}"})


@router.post("/text", status_code=202)
async def create_text_jobs(body: TextJobCreate, request: Request, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    text_request = TextRequest(tuple(body.prompts), body.max_tokens, body.temperature)
    submission = await _submitting(_service(request).submit_text(text_request, idempotency_key))
    return JSONResponse({"object": "list", "data": [job_json(j) for j in submission.jobs]},
                        status_code=202 if submission.created else 200)


@router.get("")
async def list_jobs(request: Request, ids: Annotated[str | None, Query(description="comma-separated job ids")] = None,
                    limit: Annotated[int, Query(ge=1, le=MAX_IDS)] = 20) -> dict:
    """`?ids=a,b,c`: those jobs in that order (an unknown id says `not_found`); otherwise the newest."""
    service = _service(request)
    if ids is None:
        return {"object": "list", "data": [job_json(j) for j in await service.recent(limit)]}
    wanted = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
    if not wanted or len(wanted) > MAX_IDS:
        raise APIError(422, f"ids: give between 1 and {MAX_IDS} job ids", code="validation_error", param="ids")
    found = await service.lookup(wanted)
    return {"object": "list", "data": [job_json(found[i]) if i in found else not_found_json(i) for i in wanted]}


@router.get("/{job_id}")
async def get_job(job_id: JobId, request: Request) -> dict:
    return job_json(await _service(request).get(job_id))


@router.delete("/{job_id}")
async def cancel_job(job_id: JobId, request: Request) -> dict:
    return job_json(await _service(request).cancel(job_id))


@router.get("/{job_id}/events")
async def job_event_stream(job_id: JobId, request: Request) -> StreamingResponse:
    service = _service(request)
    await service.get(job_id)  # 404 before the stream starts
    settings = request.app.state.settings
    stream = job_events(job_id, service.find, service.watchers,
                        keepalive=settings.jobs_sse_keepalive_seconds, poll=settings.jobs_sse_poll_seconds)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{job_id}/images/{index}", response_class=Response)
async def get_image(job_id: JobId, index: Annotated[int, Path(ge=0)], request: Request) -> Response:
    job = await _service(request).get(job_id)
    if job.kind != Kind.IMAGE or job.status != Status.SUCCEEDED or index >= len(job.result_keys):
        raise NotFound(f"image {index} of job {job_id} not found")
    data = await request.app.state.blobs.get(job.result_keys[index])
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400, immutable"})
