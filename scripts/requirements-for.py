#!/usr/bin/env python3
"""Print the requirements of one service image: the project's common dependencies plus its group.

    python scripts/requirements-for.py gateway > requirements.txt
    pip install -r requirements.txt -c requirements.lock     # versions from the lock

Reads pyproject.toml beside the script's parent folder (or the path given with --pyproject), so
the Dockerfiles install what pyproject.toml says, not a hand-written list. Standard library only:
it runs in a bare python image before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path


def requirements_for(pyproject: dict, group: str) -> list[str]:
    """Common dependencies + the group's, groups that name the project itself expanded."""
    project = pyproject["project"]
    groups: dict[str, list[str]] = project.get("optional-dependencies", {})
    if group not in groups:
        raise SystemExit(f"no dependency group {group!r} in pyproject.toml (have: {', '.join(sorted(groups))})")
    self_ref = re.compile(rf"^{re.escape(project['name'])}\[(?P<extras>[^\]]+)\]$")
    found: list[str] = []
    pending = [*project.get("dependencies", []), *groups[group]]
    while pending:
        requirement = pending.pop(0).strip()
        match = self_ref.match(requirement)
        if match:
            for extra in match["extras"].split(","):
                pending.extend(groups[extra.strip()])
        elif requirement not in found:
            found.append(requirement)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("group", help="a service name: gateway, scraper, retriever, ingest, imagegen")
    parser.add_argument("--pyproject", type=Path, default=Path(__file__).resolve().parent.parent / "pyproject.toml")
    args = parser.parse_args()
    with args.pyproject.open("rb") as file:
        print("\n".join(requirements_for(tomllib.load(file), args.group)))


if __name__ == "__main__":
    main()
