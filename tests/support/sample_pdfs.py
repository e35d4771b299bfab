"""The ingest tests' hand-written PDFs (`services/ingest/tests/ingest_pdfs.py`), for end-to-end tests
outside that folder."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.support.procs import ROOT


def ingest_pdfs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ingest_pdfs", ROOT / "services/ingest/tests/ingest_pdfs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
