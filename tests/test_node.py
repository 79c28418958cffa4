"""The Node suite (tests/node, node's own test runner) run from pytest, so the usual test command runs it.

Each test file runs as its own pytest test (xdist spreads them), against `streamreel serve`
started by the file itself with this interpreter. The SDKs come from tests/node/package-lock.json:
`npm ci --prefix tests/node` installs them (CI does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NODE_TESTS = Path(__file__).resolve().parent / "node"
FILES = sorted(p.name for p in NODE_TESTS.glob("*.test.mjs"))
RUN_TIMEOUT_S = 240


def test_there_are_node_tests() -> None:
    assert {"admin.test.mjs", "verdicts.test.mjs", "matrix.test.mjs"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_node_suite(name: str) -> None:
    node = shutil.which("node")
    assert node, "the Node tests need Node 20 or later on PATH (apt-get install nodejs npm)"
    assert (NODE_TESTS / "node_modules" / "@anthropic-ai" / "sdk").is_dir() and (NODE_TESTS / "node_modules" / "openai").is_dir(), (
        "the Node SDKs are not installed: run `npm ci --prefix tests/node`"
    )
    env = {**os.environ, "STREAMREEL_PYTHON": sys.executable, "NO_COLOR": "1"}
    proc = subprocess.run(
        [node, "--test", "--test-timeout=90000", "--test-reporter=spec", name],
        cwd=NODE_TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"node --test {name} failed:\n{report}"
    assert "ℹ fail 0" in report and "ℹ pass 0" not in report, report
