"""FakeVLLMMetrics: the Prometheus metrics vLLM serves on /metrics, under vLLM's current names and
labels (model_name, engine), fed by what a FakeLLM actually answers.

The chart's dashboards and alerts read these names; the ops check scrapes the FakeLLM's /metrics
in place of a vLLM pod. Values follow the fake's traffic: requests waiting (held) and running,
time to first token, prompt and generated tokens, finished requests by reason, KV cache use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

FINISHED_REASONS = ("stop", "length", "abort")
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# The KV cache share one running request takes in this fake.
CACHE_PER_REQUEST = 0.05


class FakeVLLMMetrics:
    def __init__(self, model: str) -> None:
        self.registry = CollectorRegistry()
        labels = ("model_name", "engine")
        self._labels = {"model_name": model, "engine": "0"}
        self._running = Gauge("vllm:num_requests_running", "Requests in model execution batches", labels,
                              registry=self.registry).labels(**self._labels)
        self._waiting = Gauge("vllm:num_requests_waiting", "Requests waiting to be processed", labels,
                              registry=self.registry).labels(**self._labels)
        self._cache = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage, 1 means 100 percent", labels,
                            registry=self.registry).labels(**self._labels)
        self._ttft = Histogram("vllm:time_to_first_token_seconds", "Time to first token", labels,
                               buckets=TTFT_BUCKETS, registry=self.registry).labels(**self._labels)
        self._prompt = Counter("vllm:prompt_tokens", "Prefill tokens processed", labels,
                               registry=self.registry).labels(**self._labels)
        self._generated = Counter("vllm:generation_tokens", "Generation tokens processed", labels,
                                  registry=self.registry).labels(**self._labels)
        finished = Counter("vllm:request_success", "Finished requests", (*labels, "finished_reason"),
                           registry=self.registry)
        self._finished = {reason: finished.labels(**self._labels, finished_reason=reason)
                          for reason in FINISHED_REASONS}

    @contextmanager
    def waiting(self) -> Iterator[None]:
        self._waiting.inc()
        try:
            yield
        finally:
            self._waiting.dec()

    @contextmanager
    def running(self) -> Iterator[None]:
        self._running.inc()
        self._cache.inc(CACHE_PER_REQUEST)
        try:
            yield
        finally:
            self._running.dec()
            self._cache.dec(CACHE_PER_REQUEST)

    def first_token(self, seconds: float) -> None:
        self._ttft.observe(seconds)

    def finished(self, prompt_tokens: int, generated_tokens: int, reason: str = "stop") -> None:
        self._prompt.inc(prompt_tokens)
        self._generated.inc(generated_tokens)
        self._finished[reason].inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
