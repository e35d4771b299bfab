"""HTTP edge of the documents feature: translate requests to DocumentLibrary calls and back.

Errors are not translated here: they propagate to `gateway.errors`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from gateway.auth import Caller
from gateway.deps import Documents
from gateway.documents.schemas import (
    DocumentDeleted,
    DocumentList,
    DocumentOut,
    SearchRequest,
    SearchResponse,
    SearchResultOut,
)

router = APIRouter(prefix="/v1", tags=["documents"])


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


@router.post("/documents", status_code=202, response_model=DocumentOut,
             summary="Upload a PDF, plain-text or Markdown file (multipart field `file`)")
async def upload_document(request: Request, documents: Documents, caller: Caller) -> DocumentOut:
    document = await documents.upload(caller.tenant, request.stream(), request.headers.get("content-type", ""),
                                      _content_length(request))
    return DocumentOut.of(document)


@router.get("/documents", response_model=DocumentList, summary="List documents, newest first")
async def list_documents(
    documents: Documents,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="id of the last document seen")] = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> DocumentList:
    page = await documents.page(caller.tenant, limit=limit, after=after, offset=offset)
    data = [DocumentOut.of(d) for d in page.documents]
    return DocumentList(data=data, has_more=page.has_more, next_after=data[-1].id if page.has_more else None)


@router.get("/documents/{document_id}", response_model=DocumentOut, summary="One document's status")
async def get_document(document_id: str, documents: Documents, caller: Caller) -> DocumentOut:
    return DocumentOut.of(await documents.get(caller.tenant, document_id))


@router.delete("/documents/{document_id}", response_model=DocumentDeleted,
               summary="Delete a document: its passages, its file and its record")
async def delete_document(document_id: str, documents: Documents, caller: Caller) -> DocumentDeleted:
    await documents.delete(caller.tenant, document_id)
    return DocumentDeleted(id=document_id)


@router.post("/search", response_model=SearchResponse, summary="Semantic search over uploaded documents")
async def search(body: SearchRequest, documents: Documents, caller: Caller) -> SearchResponse:
    hits = await documents.search(caller.tenant, body.query, top_k=body.top_k, score_threshold=body.score_threshold,
                                  document_ids=body.document_ids, mode=body.mode)
    return SearchResponse(data=[SearchResultOut.of(h) for h in hits])
