"""The documents feature's AMQP edge out: `document.uploaded`, confirmed by the broker.

Progress comes back on `job.progress`, read by the gateway's one consumer (`gateway.consumer`).
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.documents.domain import Document
from genai.events.v1 import events_pb2
from genai_common.amqp import DOCUMENT_UPLOADED, Amqp


class AmqpUploadPublisher:
    def __init__(self, amqp: Amqp) -> None:
        self._amqp = amqp

    async def document_uploaded(self, document: Document) -> None:
        uploaded_at = Timestamp()
        uploaded_at.FromDatetime(document.created_at)
        event = events_pb2.DocumentUploaded(
            document_id=document.id, blob_key=document.blob_key, sha256=document.sha256,
            filename=document.name, media_type=document.media_type, size_bytes=document.size_bytes,
            uploaded_at=uploaded_at, tenant=document.tenant,
        )
        # message_id and the header let even an undecodable body be traced to its record.
        await self._amqp.publish(DOCUMENT_UPLOADED, event, message_id=document.id,
                                 headers={"document_id": document.id})
