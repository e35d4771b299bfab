"""JSON response bodies encoded with orjson (compact, UTF-8 as is, like Starlette's JSONResponse,
several times faster on an answer's nested objects)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
