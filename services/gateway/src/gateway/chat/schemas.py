"""Wire models of the OpenAI chat API, plus the `genai` extension field."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Fields the gateway handles itself; everything else a client sends goes to the LLM as given.
OWN_FIELDS = {"messages", "model", "stream", "stream_options", "n", "genai"}


class ContentPart(BaseModel):
    """A content part: `{"type": "text", "text": ...}`, or any other typed part (images...), kept as sent."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # tool_calls, tool_call_id, refusal...

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = None


class GenaiOptions(BaseModel):
    """The gateway's extension: which sources to consult."""

    model_config = ConfigDict(extra="forbid")

    rag: bool = True
    scrape: bool = True
    top_k: int = Field(4, ge=1, le=50)
    score_threshold: float | None = Field(None, allow_inf_nan=False)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # logit_bias, logprobs, response_format, tools, ...

    messages: list[ChatMessage] = Field(default_factory=list)
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    user: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    genai: GenaiOptions = Field(default_factory=GenaiOptions)

    def llm_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.model_dump(include={"messages"}, exclude_none=True)["messages"]
        return messages

    def llm_params(self) -> dict[str, Any]:
        """The OpenAI fields the client set, for the LLM as given (n=1 is the default there too)."""
        return self.model_dump(exclude_unset=True, exclude=OWN_FIELDS)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "genai"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
