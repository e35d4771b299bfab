"""Chunking takes time linear in the text, whatever the text looks like, and gives up at its deadline."""

from __future__ import annotations

import time

import pytest

from ingest.chunking import ChunkingPolicy, ChunkingTimedOut, chunk_pages, split_sentences
from tests.support.growth import assert_linear

POLICY = ChunkingPolicy(target_chars=800, overlap_chars=150, max_chars=1200)


def _chunk(text: object) -> object:
    assert isinstance(text, str)
    return chunk_pages([(1, text)], POLICY)


@pytest.mark.parametrize("unit", [
    "A. ",            # an "abbreviation" after every sentence: once 17.9 s at 50 KB
    "Fig. ",
    "x",              # one "word" far longer than a chunk
    "word ",          # one sentence far longer than a chunk
    "Short one. ",
    ".) ",
])
def test_chunking_is_linear(unit: str) -> None:
    assert_linear(lambda n: unit * (n // len(unit)), _chunk, 6_000)


def test_abbreviations_still_join_sentences() -> None:
    assert split_sentences("See Fig. 3 for details. Then stop. Dr. Who came.") == [
        "See Fig. 3 for details.", "Then stop.", "Dr. Who came."]
    assert split_sentences("A. B. C. Done.") == ["A. B. C. Done."]


def test_chunking_past_its_deadline_stops() -> None:
    with pytest.raises(ChunkingTimedOut):
        chunk_pages([(1, "Short one. " * 10_000)], POLICY, deadline=time.monotonic() - 1)
