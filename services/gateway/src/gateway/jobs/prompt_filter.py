"""A configurable blocklist for job prompts: whole words or phrases, any case."""

from __future__ import annotations

import re
from collections.abc import Sequence


class PromptFilter:
    def __init__(self, blocked_terms: Sequence[str]) -> None:
        terms = sorted({t.strip() for t in blocked_terms if t.strip()}, key=len, reverse=True)
        # Whole word: no word character right before or after (works for terms with punctuation too).
        self._pattern = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", re.IGNORECASE)
            if terms else None
        )

    def blocked(self, text: str) -> bool:
        return self._pattern is not None and self._pattern.search(text) is not None
