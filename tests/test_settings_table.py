"""The README's configuration table lists every setting of every service, with the right default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "settings_table.py"


def check(readme: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--check", "--readme", str(readme)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_readme_table_matches_the_settings_classes() -> None:
    result = check(ROOT / "README.md")
    assert result.returncode == 0, result.stderr


def test_a_missing_row_or_a_wrong_default_is_caught_and_regenerating_fixes_it(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines(keepends=True)
    stale = "".join(line for line in lines if not line.startswith("| `RETRIEVER_HYBRID_FUSION` "))
    stale = stale.replace("| `INGEST_CHUNK_CHARS` | ingest | `1000` |", "| `INGEST_CHUNK_CHARS` | ingest | `800` |")
    assert stale != readme and "`800`" in stale
    copy = tmp_path / "README.md"
    copy.write_text(stale)

    result = check(copy)
    assert result.returncode == 1
    assert "missing from the table: RETRIEVER_HYBRID_FUSION" in result.stderr
    assert "INGEST_CHUNK_CHARS" in result.stderr

    subprocess.run([sys.executable, str(SCRIPT), "--readme", str(copy)], cwd=ROOT, check=True, timeout=120)
    assert check(copy).returncode == 0
    regenerated = copy.read_text()
    assert "| `INGEST_CHUNK_CHARS` | ingest | `1000` |" in regenerated
    assert "| `RETRIEVER_HYBRID_FUSION` | retriever | `dbsf` |" in regenerated  # its meaning from the code
