from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_OK: _ClassVar[Outcome]
    OUTCOME_BLOCKED: _ClassVar[Outcome]
    OUTCOME_TIMEOUT: _ClassVar[Outcome]
    OUTCOME_HTTP_ERROR: _ClassVar[Outcome]
    OUTCOME_TOO_LARGE: _ClassVar[Outcome]
    OUTCOME_UNSUPPORTED_TYPE: _ClassVar[Outcome]
    OUTCOME_FETCH_ERROR: _ClassVar[Outcome]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_OK: Outcome
OUTCOME_BLOCKED: Outcome
OUTCOME_TIMEOUT: Outcome
OUTCOME_HTTP_ERROR: Outcome
OUTCOME_TOO_LARGE: Outcome
OUTCOME_UNSUPPORTED_TYPE: Outcome
OUTCOME_FETCH_ERROR: Outcome

class ScrapeRequest(_message.Message):
    __slots__ = ("urls", "max_chars_per_page")
    URLS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHARS_PER_PAGE_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedScalarFieldContainer[str]
    max_chars_per_page: int
    def __init__(self, urls: _Optional[_Iterable[str]] = ..., max_chars_per_page: _Optional[int] = ...) -> None: ...

class Page(_message.Message):
    __slots__ = ("url", "final_url", "outcome", "reason", "http_status", "bytes", "elapsed_ms", "title", "text", "content_type")
    URL_FIELD_NUMBER: _ClassVar[int]
    FINAL_URL_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    url: str
    final_url: str
    outcome: Outcome
    reason: str
    http_status: int
    bytes: int
    elapsed_ms: int
    title: str
    text: str
    content_type: str
    def __init__(self, url: _Optional[str] = ..., final_url: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., reason: _Optional[str] = ..., http_status: _Optional[int] = ..., bytes: _Optional[int] = ..., elapsed_ms: _Optional[int] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., content_type: _Optional[str] = ...) -> None: ...

class ScrapeResponse(_message.Message):
    __slots__ = ("pages",)
    PAGES_FIELD_NUMBER: _ClassVar[int]
    pages: _containers.RepeatedCompositeFieldContainer[Page]
    def __init__(self, pages: _Optional[_Iterable[_Union[Page, _Mapping]]] = ...) -> None: ...
