"""A document's name: the client's file name made safe to show (never a path, never a key).

It is the name the document keeps everywhere: its record, the `document.uploaded` event, the
index, search results and citations.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_CHARS = 200
FALLBACK_STEM = "document"
_EXTENSION_OF = {"application/pdf": ".pdf", "text/plain": ".txt", "text/markdown": ".md"}
_SPACES = re.compile(r"\s+")
# Characters that mean something to shells, file systems or markup; shown as "_".
_RESERVED = re.compile(r'[<>:"|?*\\/]')


def document_name(raw_filename: str | None, media_type: str) -> str:
    """The client's file name as display metadata: no path, controls, bidi tricks or odd lengths.

    NFKC-normalised; path components (both separator styles) dropped; control, format
    (bidi overrides such as U+202E, zero-width) and unassigned characters removed; whitespace
    collapsed; capped at ~200 characters keeping the extension; `document.<ext>` if nothing is left.
    """
    name = unicodedata.normalize("NFKC", raw_filename or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _SPACES.sub(" ", name)  # tabs and line breaks become spaces before controls are dropped
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    name = _RESERVED.sub("_", name)
    name = _SPACES.sub(" ", name).strip(" .")
    if not name:
        return FALLBACK_STEM + _EXTENSION_OF.get(media_type, "")
    return _cap(name)


def _cap(name: str) -> str:
    if len(name) <= MAX_NAME_CHARS:
        return name
    stem, dot, ext = name.rpartition(".")
    if dot and 0 < len(ext) <= 10:
        return stem[: MAX_NAME_CHARS - len(ext) - 1].rstrip() + "." + ext
    return name[:MAX_NAME_CHARS].rstrip()


def extension(name: str | None) -> str:
    """Lower-case extension of a raw name, without the dot ("" when none)."""
    base = re.split(r"[/\\]", name or "")[-1]
    _, dot, ext = base.rpartition(".")
    return ext.lower() if dot else ""
