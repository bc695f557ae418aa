"""The checks themselves: CI runs lint and tests, `make clean` keeps committed code, pytest is strict."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_ci(tmp_path: Path, fails: tuple[str, ...] = ()) -> tuple[int, list[str]]:
    """.ci/run with a `make` on PATH that records its targets and fails those in `fails`: (exit code, targets)."""
    log = tmp_path / "make.log"
    fake = tmp_path / "bin" / "make"
    fake.parent.mkdir()
    checks = " && ".join(f'[ "$1" != {target} ]' for target in fails) or "true"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n{checks}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(ROOT / ".ci" / "run")], env=env, check=False, timeout=30, capture_output=True)
    return done.returncode, log.read_text().split()


def test_ci_runs_lint_the_gateway_build_tests_and_conformance(tmp_path: Path) -> None:
    assert run_ci(tmp_path) == (0, ["lint", "gateway", "conformance", "bench-smoke", "test"])


def test_ci_stops_when_lint_fails(tmp_path: Path) -> None:
    code, targets = run_ci(tmp_path, fails=("lint",))
    assert code != 0 and targets == ["lint"]


def test_ci_goes_on_when_the_gateway_cannot_be_built_and_stops_when_tests_fail(tmp_path: Path) -> None:
    """A module the Go proxy refuses fails `make gateway`; the gateway tests then skip with that reason."""
    code, targets = run_ci(tmp_path, fails=("gateway", "test"))
    assert code != 0 and targets == ["lint", "gateway", "conformance", "bench-smoke", "test"]


def test_make_clean_keeps_the_committed_generated_code(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    tree = tmp_path / "tree"
    (tree / "protogen").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", tree)
    kept = [tree / "protogen" / name for name in ("x_pb2.py", "x_pb2.pyi", "x_pb2_grpc.py", "__init__.py")]
    for path in kept:
        path.write_text("# generated\n")
    (tree / ".mypy_cache").mkdir()
    subprocess.run(["make", "-s", "clean"], cwd=tree, check=True, timeout=30)
    assert all(path.exists() for path in kept)
    assert not (tree / ".mypy_cache").exists(), "clean still cleans"


def test_an_unknown_marker_fails_collection(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("import pytest\n\n@pytest.mark.bnech\ndef test_x():\n    pass\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_x.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "bnech" in done.stdout


def test_every_test_named_in_the_security_doc_exists() -> None:
    doc = (ROOT / "docs" / "security.md").read_text()
    named = re.findall(r"`(test_\w+\.py)::(\w+)(?:::(\w+))?`", doc)
    assert len(named) >= 20
    for file, first, second in named:
        source = (ROOT / "tests" / file).read_text()
        for name in filter(None, (first, second)):
            assert re.search(rf"^\s*(async )?(def|class) {name}\b", source, re.MULTILINE), f"{file}::{name}"
