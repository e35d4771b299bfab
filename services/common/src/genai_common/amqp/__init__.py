"""RabbitMQ plumbing (aio-pika), one policy for every consumer: see `topology` for what lives on
the broker, `consumer` for a delivery's fate (ack, retry with back-off, give up), `client` for the
connection and publishing, `codec` for bodies and retry headers."""

from genai_common.amqp.broker_version import MINIMUM_VERSION, BrokerTooOld
from genai_common.amqp.client import Amqp
from genai_common.amqp.codec import PermanentFailure, attempt, decode, header_text, job_id_of
from genai_common.amqp.consumer import Consumer, Handler, describe
from genai_common.amqp.topology import (
    DEAD_LETTER_EXCHANGE,
    DELIVERY_LIMIT,
    DOCUMENT_UPLOADED,
    EXCHANGE,
    IMAGE_JOB_REQUESTED,
    JOB_CANCEL_REQUESTED,
    JOB_PROGRESS,
    PROTOBUF_CONTENT_TYPE,
    TEXT_JOB_REQUESTED,
    GiveUp,
    QueueSpec,
    RetryPolicy,
)

__all__ = [
    "DEAD_LETTER_EXCHANGE", "DELIVERY_LIMIT", "MINIMUM_VERSION", "BrokerTooOld",
    "DOCUMENT_UPLOADED", "EXCHANGE", "IMAGE_JOB_REQUESTED",
    "JOB_CANCEL_REQUESTED", "JOB_PROGRESS", "PROTOBUF_CONTENT_TYPE", "TEXT_JOB_REQUESTED", "Amqp", "Consumer",
    "GiveUp", "Handler", "PermanentFailure", "QueueSpec", "RetryPolicy", "attempt", "decode", "describe",
    "header_text", "job_id_of",
]
