"""docs/reproduce.md runs as written: its python blocks, and its console blocks print what the page says."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reproduce.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = [(m.group(1), m.group(2), m.group(3)) for m in re.finditer(r"(<!-- skip: next -->\n)?```(python|console)\n(.*?)```", TEXT, re.S)]
PYTHON = [code for skip, kind, code in BLOCKS if kind == "python" and not skip]
CONSOLE = [code for skip, kind, code in BLOCKS if kind == "console" and not skip]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch directory that sees the repository's files at the paths the page uses."""
    for name in ("examples", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_page_has_runnable_examples() -> None:
    assert len(PYTHON) >= 2 and len(CONSOLE) >= 3


@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_each_python_block_runs(code: str, workdir: Path) -> None:
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})


@pytest.mark.parametrize("block", CONSOLE, ids=[f"console-{i}" for i in range(len(CONSOLE))])
def test_each_console_block_prints_what_the_page_says(block: str, workdir: Path) -> None:
    commands: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        else:
            commands[-1][1].append(line)
    for command, expected in commands:
        argv = shlex.split(command)
        assert argv[0] == "streamreel"
        done = subprocess.run([sys.executable, "-m", "streamreel", *argv[1:]], capture_output=True, text=True, timeout=60, cwd=workdir, env={**os.environ, "COLUMNS": "200"})
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == expected, command
