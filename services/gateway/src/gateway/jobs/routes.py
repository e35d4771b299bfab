"""HTTP edge of the jobs feature: translate requests to the JobBoard and jobs back to JSON.

Errors are not translated here: they propagate to `gateway.errors`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gateway.auth import Caller
from gateway.deps import Blobs, Jobs, Settings
from gateway.jobs.domain import ImageRequest, Kind, TextRequest
from gateway.jobs.event_stream import job_events
from gateway.jobs.schemas import ImageJobCreate, TextJobCreate, job_json, not_found_json
from gateway.jobs.store import IDEMPOTENCY_HEADER
from gateway.progress import JobState
from gateway.sse import HEADERS, MEDIA_TYPE
from genai_common.errors import NotFound, ValidationFailed

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

MAX_IDS = 100
IdempotencyKey = Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER, min_length=1, max_length=255)]
JobId = Annotated[str, Path(min_length=1, max_length=64)]
IdList = Annotated[str | None, Query(description="comma-separated job ids")]


@router.post("/images", status_code=202)
async def create_image_job(body: ImageJobCreate, jobs: Jobs, caller: Caller,
                           idempotency_key: IdempotencyKey = None) -> JSONResponse:
    submission = await jobs.submit_image(caller.tenant, ImageRequest(**body.model_dump()), idempotency_key)
    job = submission.jobs[0]
    return JSONResponse(job_json(job), status_code=202 if submission.created else 200,
                        headers={"Location": f"/v1/jobs/{job.id}"})


@router.post("/text", status_code=202)
async def create_text_jobs(body: TextJobCreate, jobs: Jobs, caller: Caller,
                           idempotency_key: IdempotencyKey = None) -> JSONResponse:
    text_request = TextRequest(tuple(body.prompts), body.max_tokens, body.temperature)
    submission = await jobs.submit_text(caller.tenant, text_request, idempotency_key)
    return JSONResponse({"object": "list", "data": [job_json(j) for j in submission.jobs]},
                        status_code=202 if submission.created else 200)


@router.get("")
async def list_jobs(jobs: Jobs, caller: Caller, ids: IdList = None,
                    limit: Annotated[int, Query(ge=1, le=MAX_IDS)] = 20) -> dict[str, Any]:
    """`?ids=a,b,c`: those jobs in that order (an unknown id says `not_found`); otherwise the newest."""
    if ids is None:
        return {"object": "list", "data": [job_json(j) for j in await jobs.recent(caller.tenant, limit)]}
    wanted = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
    if not wanted or len(wanted) > MAX_IDS:
        raise ValidationFailed(f"ids: give between 1 and {MAX_IDS} job ids", code="validation_error", param="ids")
    found = await jobs.lookup(caller.tenant, wanted)
    return {"object": "list", "data": [job_json(found[i]) if i in found else not_found_json(i) for i in wanted]}


@router.get("/{job_id}")
async def get_job(job_id: JobId, jobs: Jobs, caller: Caller) -> dict[str, Any]:
    return job_json(await jobs.get(caller.tenant, job_id))


@router.delete("/{job_id}")
async def cancel_job(job_id: JobId, jobs: Jobs, caller: Caller) -> dict[str, Any]:
    return job_json(await jobs.cancel(caller.tenant, job_id))


@router.get("/{job_id}/events")
async def job_event_stream(job_id: JobId, jobs: Jobs, settings: Settings, caller: Caller,
                           request: Request) -> StreamingResponse:
    await jobs.get(caller.tenant, job_id)  # 404 (also for another tenant's job) before the stream starts
    stream = job_events(job_id, jobs.find, jobs.watchers, request.app.state.draining,
                        keepalive=settings.jobs_sse_keepalive_seconds, poll=settings.jobs_sse_poll_seconds)
    return StreamingResponse(stream, media_type=MEDIA_TYPE, headers=HEADERS)


@router.get("/{job_id}/images/{index}", response_class=Response)
async def get_image(job_id: JobId, index: Annotated[int, Path(ge=0)], jobs: Jobs, blobs: Blobs,
                    caller: Caller) -> Response:
    job = await jobs.get(caller.tenant, job_id)
    if job.kind != Kind.IMAGE or job.status != JobState.SUCCEEDED or index >= len(job.result_keys):
        raise NotFound(f"image {index} of job {job_id} not found")
    data = await blobs.get(job.result_keys[index])
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=86400, immutable"})
