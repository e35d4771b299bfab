"""HTTP edge of the documents feature: translate requests to DocumentService calls and back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.requests import ClientDisconnect

from gateway.documents.receive import MissingFile, NotMultipart, UploadTooLarge
from gateway.documents.schemas import (
    DocumentDeleted,
    DocumentList,
    DocumentOut,
    SearchRequest,
    SearchResponse,
    SearchResultOut,
)
from gateway.documents.service import DocumentService
from gateway.documents.sniff import EmptyUpload, UnsupportedType
from gateway.errors import APIError

router = APIRouter(prefix="/v1", tags=["documents"])


def _service(request: Request) -> DocumentService:
    return request.app.state.documents


Service = Annotated[DocumentService, Depends(_service)]


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


@router.post("/documents", status_code=202, response_model=DocumentOut,
             summary="Upload a PDF, plain-text or Markdown file (multipart field `file`)")
async def upload_document(request: Request, service: Service) -> DocumentOut:
    try:
        document = await service.upload(request.stream(), request.headers.get("content-type", ""),
                                        _content_length(request))
    except UploadTooLarge as exc:
        raise APIError(413, exc.message, code="file_too_large", param="file") from exc
    except (UnsupportedType, NotMultipart) as exc:
        raise APIError(415, exc.message, code="unsupported_media_type", param="file") from exc
    except (MissingFile, EmptyUpload) as exc:
        raise APIError(422, f"file: {exc.message}", code="validation_error", param="file") from exc
    except ClientDisconnect as exc:
        raise APIError(400, "the client disconnected during the upload", code="client_disconnected") from exc
    return DocumentOut.of(document)


@router.get("/documents", response_model=DocumentList, summary="List documents, newest first")
async def list_documents(
    service: Service,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(max_length=64, description="id of the last document seen")] = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> DocumentList:
    page = await service.list(limit=limit, after=after, offset=offset)
    data = [DocumentOut.of(d) for d in page.documents]
    return DocumentList(data=data, has_more=page.has_more, next_after=data[-1].id if page.has_more else None)


@router.get("/documents/{document_id}", response_model=DocumentOut, summary="One document's status")
async def get_document(document_id: str, service: Service) -> DocumentOut:
    return DocumentOut.of(await service.get(document_id))


@router.delete("/documents/{document_id}", response_model=DocumentDeleted,
               summary="Delete a document: its passages, its file and its record")
async def delete_document(document_id: str, service: Service) -> DocumentDeleted:
    await service.delete(document_id)
    return DocumentDeleted(id=document_id)


@router.post("/search", response_model=SearchResponse, summary="Semantic search over uploaded documents")
async def search(body: SearchRequest, service: Service) -> SearchResponse:
    hits = await service.search(body.query, top_k=body.top_k, score_threshold=body.score_threshold,
                                document_ids=body.document_ids, mode=body.mode)
    return SearchResponse(data=[SearchResultOut.of(h) for h in hits])
