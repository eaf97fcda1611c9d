"""The layers of docs/architecture.md hold: no module imports from a layer above its own.

import-linter checks the contract in pyproject.toml (``lint-imports``, also run by .ci/run);
this test runs it with the suite, and checks that every module of ``server/`` is placed in a
layer, so a new module cannot slip past the contract by not being named in it.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in contract["layers"]]


def _modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "server").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            continue
        names.append(".".join(parts))
    return names


def test_every_module_is_in_a_layer():
    placed = [m for layer in _layers() for m in layer]
    root_only = {"server.__main__"}  # runs the CLI: the very top, importing only server.cli
    missing = [m for m in _modules() if m not in root_only and not any(m == p or m.startswith(p + ".") for p in placed)]
    assert missing == [], f"place these modules in a layer of pyproject.toml's [tool.importlinter]: {missing}"


def test_no_module_imports_from_a_layer_above():
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
