"""BM25 term weights as sparse vectors, so Qdrant can do keyword search next to dense search.

Documents get the BM25 term-frequency part, `tf*(k1+1) / (tf + k1*(1 - b + b*len/avg_len))`,
with `avg_len` configured (chunk sizes are set by the ingest pipeline, so it is known up front).
Queries get weight 1 per distinct term; the collection's sparse vector has `Modifier.IDF`, so
Qdrant multiplies each query term by `ln((N - df + 0.5)/(df + 0.5) + 1)` over the points it holds.
The dot product is then the BM25 score.

Terms: lowercase `\\w+` tokens, English stopwords dropped, optionally Snowball-stemmed; the term
id is a stable 31-bit hash (blake2b), so no vocabulary has to be stored or shared.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from functools import lru_cache

import snowballstemmer

from retriever.domain import SparseVector
from retriever.stopwords import ENGLISH_STOPWORDS

_TOKEN = re.compile(r"\w+")
_TERM_ID_MASK = 0x7FFF_FFFF
STEMMERS = ("english", "none")


@lru_cache(maxsize=1 << 18)
def term_id(term: str) -> int:
    """A stable 31-bit id for a term (the same in every process and on every machine)."""
    digest = hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest()
    return int.from_bytes(digest, "big") & _TERM_ID_MASK


def _stem_function(stemmer: str) -> Callable[[str], str]:
    if stemmer == "none":
        return lambda word: word
    if stemmer == "english":
        snowball = snowballstemmer.stemmer("english")
        lock = threading.Lock()  # a stemmer keeps per-call state; index threads and the loop share it

        def stem(word: str) -> str:
            with lock:
                return snowball.stemWord(word)

        return lru_cache(maxsize=1 << 18)(stem)
    raise ValueError(f"unknown stemmer {stemmer!r}: use one of {', '.join(STEMMERS)}")


class Bm25Encoder:
    """Turns text into BM25 sparse vectors (documents) or term sets (queries)."""

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avg_len: float = 100.0, stemmer: str = "english") -> None:
        if k1 < 0 or not 0 <= b <= 1 or avg_len <= 0:
            raise ValueError("BM25 needs k1 >= 0, 0 <= b <= 1 and avg_len > 0")
        self._k1, self._b, self._avg_len = k1, b, avg_len
        self._stemmer = stemmer
        self._stem = _stem_function(stemmer)

    @property
    def name(self) -> str:
        """Identifies the term scheme: vectors made under another name do not match these."""
        return f"bm25-blake2b31-{self._stemmer}-v1"

    def terms(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        return [self._stem(w) for w in words if w not in ENGLISH_STOPWORDS]

    def encode_document(self, text: str) -> SparseVector:
        counts = Counter(term_id(t) for t in self.terms(text))
        length = sum(counts.values())
        norm = self._k1 * (1.0 - self._b + self._b * length / self._avg_len)
        return _vector((i, tf * (self._k1 + 1.0) / (tf + norm)) for i, tf in counts.items())

    def encode_query(self, text: str) -> SparseVector:
        return _vector((i, 1.0) for i in {term_id(t) for t in self.terms(text)})

    def encode_documents(self, texts: Iterable[str]) -> list[SparseVector]:
        return [self.encode_document(t) for t in texts]


def _vector(pairs: Iterable[tuple[int, float]]) -> SparseVector:
    ordered = sorted(pairs)
    return SparseVector(tuple(i for i, _ in ordered), tuple(v for _, v in ordered))
