"""Cleaning and chunking: what the retriever gets to embed, and what citations point at."""

from __future__ import annotations

import asyncio
import random
import re
import time
import unicodedata

import pytest

from ingest.chunking import ChunkingPolicy, chunk_pages, split_sentences
from ingest.clean import clean_text

ARTICLE = " ".join(
    f"Sentence number {i} explains how the harbour museum handled exhibit {i * 7} in season {i % 4}."
    for i in range(120)
)


def test_cleaning_joins_hyphenated_words_and_drops_invisible_characters() -> None:
    raw = ("The infor-\nmation age\x00 began.\r\nJean-\nPierre came\u202e back.\n\n\n"
           "  New   para\u00adgraph\tstarts.\ufeff")
    assert clean_text(raw) == "The information age began. Jean-Pierre came back.\n\nNew paragraph starts."


def test_cleaning_normalises_compatibility_characters() -> None:
    assert clean_text("ﬁnal ｆｕｌｌ①") == "final full1"


def test_sentences_respect_common_abbreviations_and_cjk_stops() -> None:
    text = "Dr. Smith et al. showed it (Fig. 2). It works! 这是中文。这是第二句。 Done."
    assert split_sentences(text) == ["Dr. Smith et al. showed it (Fig. 2).", "It works!", "这是中文。",
                                     "这是第二句。", "Done."]


def test_chunks_are_sized_overlapping_and_never_split_words() -> None:
    policy = ChunkingPolicy(target_chars=500, overlap_chars=120, max_chars=800)
    chunks = chunk_pages([(1, ARTICLE)], policy)
    words = set(ARTICLE.split())
    assert len(chunks) > 10
    for chunk in chunks:
        assert len(chunk.text) <= policy.max_chars + policy.overlap_chars
        assert set(chunk.text.split()) <= words, "a word was cut"
    for before, after in zip(chunks, chunks[1:], strict=False):
        last_sentence = split_sentences(before.text)[-1]
        assert after.text.startswith(last_sentence), "consecutive chunks should overlap by whole sentences"
    # Every sentence of the source is in some chunk.
    assert all(any(s in c.text for c in chunks) for s in split_sentences(ARTICLE))


def test_chunks_keep_the_page_where_their_new_text_starts() -> None:
    pages = [(1, "Alpha is first. " * 30), (2, "Beta comes next. " * 30), (3, "Gamma ends it. " * 30)]
    chunks = chunk_pages(pages, ChunkingPolicy(target_chars=300, overlap_chars=60, max_chars=400))
    for chunk in chunks:
        fresh = chunk.text.split(". ")[-1]
        expected = {"Alpha": 1, "Beta": 2, "Gamma": 3}[fresh.split()[0]]
        assert chunk.page <= expected
    assert [c.page for c in chunks] == sorted(c.page for c in chunks)
    assert {c.page for c in chunks} == {1, 2, 3}
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_an_overlong_sentence_is_cut_at_spaces() -> None:
    sentence = " ".join(f"word{i}" for i in range(400))
    chunks = chunk_pages([(0, sentence)], ChunkingPolicy(target_chars=300, overlap_chars=50, max_chars=400))
    assert all(len(c.text) <= 450 for c in chunks)
    assert all(re.fullmatch(r"(word\d+ ?)+", c.text) for c in chunks)
    assert " ".join(c.text for c in chunks).split()[-1] == "word399"


def test_text_without_spaces_is_still_bounded() -> None:
    chunks = chunk_pages([(1, "字" * 5000)], ChunkingPolicy(target_chars=500, overlap_chars=100, max_chars=800))
    assert all(len(c.text) <= 800 for c in chunks) and sum(len(c.text) for c in chunks) >= 5000


@pytest.mark.parametrize("text", ["", "   \n\n  "])
def test_empty_text_gives_no_chunks(text: str) -> None:
    assert chunk_pages([(1, clean_text(text))]) == []


def test_chunking_is_deterministic() -> None:
    assert chunk_pages([(1, ARTICLE)]) == chunk_pages([(1, ARTICLE)])


def _clean_in_one_pass(text: str) -> str:
    """What cleaning gave before it worked in slices: each step over the whole text at once."""
    from ingest import clean

    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = clean._dehyphenate(clean._INVISIBLE.sub("", text))
    paragraphs = (clean._SPACES.sub(" ", block).strip() for block in clean._BLANK_LINES.split(text))
    return "\n\n".join(p for p in paragraphs if p)


def test_cleaning_in_slices_gives_what_one_pass_over_the_whole_text_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny slices put a cut next to every hyphen, line end, whitespace run and invisible
    character that a few thousand random texts hold; the cleaned text never changes."""
    monkeypatch.setattr("ingest.clean.SLICE_CHARS", 3)
    alphabet = ["a", "b", "Z", "é", "1", "-", "－", "﹣", " ", "\t", "\n", "\r", "\r\n", "\u200b", "\u00ad",
                "\u00a0", "\u3000", "\u0301", "ﬁ", ".", "\x0c"]
    rng = random.Random(13)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert clean_text(text) == _clean_in_one_pass(text), repr(text)


def test_cleaning_a_large_document_never_holds_the_loop_for_long() -> None:
    """Cleaning runs in a thread; each step works on a slice of at most two SLICE_CHARS, so the
    GIL is handed back often and a coroutine on the event loop keeps its timing while megabytes
    are cleaned. Measured against one pass over the whole text, in the same run (the machine's
    load moves both)."""
    from ingest import clean

    text = ("A reading at the pier.\t \u200b \u00a0 " * 400 + "\n") * 2000  # about 12 MB
    for cut in (clean._ASCII_CUT, clean._HYPHEN_CUT, clean._WORD_CUT):
        assert max(map(len, clean._slices(text, cut))) <= 2 * clean.SLICE_CHARS

    async def worst_lag(cleaner) -> float:  # type: ignore[no-untyped-def]
        worst = 0.0
        cleaning = asyncio.ensure_future(asyncio.to_thread(cleaner, text))
        while not cleaning.done():
            asked = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - asked - 0.01)
        assert (await cleaning).startswith("A reading at the pier. A reading")
        return worst

    sliced, whole = asyncio.run(worst_lag(clean_text)), asyncio.run(worst_lag(_clean_in_one_pass))
    assert sliced < whole / 2, (sliced, whole)


def test_sentences_split_piece_by_piece_as_one_split_would() -> None:
    from ingest.chunking import _SENTENCE_END, _between

    alphabet = ["A", "b", "Ж", "1", ".", "!", "?", "…", "。", "！", '"', "”", ")", " ", "\n", "\n\n", "e.g.", "Dr."]
    rng = random.Random(14)
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert list(_between(_SENTENCE_END, text)) == _SENTENCE_END.split(text), repr(text)
