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


def test_ci_runs_lint_the_gateway_build_tests_and_conformance(tmp_path: Path) -> None:
    # A `make` on PATH that records what it was asked to do, so the real script runs unchanged.
    log = tmp_path / "make.log"
    fake = tmp_path / "bin" / "make"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(ROOT / ".ci" / "run")], env=env, check=True, timeout=30)
    assert log.read_text().split() == ["lint", "gateway", "conformance", "bench-smoke", "test"]


def test_ci_stops_when_lint_fails(tmp_path: Path) -> None:
    log = tmp_path / "make.log"
    fake = tmp_path / "bin" / "make"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n[ "$1" != lint ]\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(ROOT / ".ci" / "run")], env=env, check=False, timeout=30)
    assert done.returncode != 0 and log.read_text().split() == ["lint"]


def test_ci_goes_on_when_the_gateway_cannot_be_built_and_stops_when_tests_fail(tmp_path: Path) -> None:
    """A module the Go proxy refuses fails `make gateway`; the gateway tests then skip with that reason."""
    log = tmp_path / "make.log"
    fake = tmp_path / "bin" / "make"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n[ "$1" != gateway ] && [ "$1" != test ]\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(ROOT / ".ci" / "run")], env=env, check=False, timeout=30, capture_output=True)
    assert done.returncode != 0 and log.read_text().split() == ["lint", "gateway", "conformance", "bench-smoke", "test"]


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
