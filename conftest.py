"""Every example in README.md and docs/*.md runs with the test suite (sybil).

How a page's fenced blocks run, in order, each page in a working directory of its own that
holds a copy of the repository (so `examples/...` and `tests/data/...` paths work and
nothing a page writes reaches the repository; the package itself is not copied, so the
installed one is what runs):

- ```python: run in one namespace per page, like a script, from the working directory. A
  block that defines `test_*` functions is a test file instead: it is saved as
  `examples/<name>.py` (the name from a first line `# test_name.py`, else one made from
  the page and line; beside `examples/my_app.py` and `examples/cassettes/`) and pytest runs
  it, so fixtures, markers and hypothesis behave as they do for a user.
- ```console / ```sh: each `$ ` line is a command (a line ending in `\\` continues it),
  run by one bash per block; the lines after it up to the next `$ ` are its output, checked
  when shown (`...` stands for anything; ports, the working directory and trailing spaces
  are normalised). A command that exits non-zero must show its output. A block with no
  `$ ` line is a script and must exit 0. COLUMNS is 80, as in a terminal.
- `<!-- skip: next -->` on the line before a block leaves it out; the page says why.

Each page is one test (`pytest docs/look.md`), so that under xdist its blocks run in
order on one worker; a failure names the block's line.
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import hypothesis.configuration  # noqa: F401  # its storage directory is the cwd at import: fix it before a page changes directory
import pytest
from hypothesis import settings
from sybil import Example, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import CodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parent

settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
"""The suite draws the same examples on every run (``ci``), so a red CI is a real failure that
replays; ``HYPOTHESIS_PROFILE=explore pytest`` draws fresh ones to look for new bugs."""
COMMAND_TIMEOUT_S = 60
NOT_COPIED = {"conftest.py", "streamreel"}
"""Top-level entries a page's copy leaves out: this file, and the package, so that code run
from the copy imports the installed streamreel rather than a second one."""
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "venv", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache",
    ".ruff_cache", "node_modules", "site", "build", "dist",
)  # fmt: skip

def _workdir(example: Example) -> Path:
    return example.namespace["__docs_workdir__"]

def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update({"COLUMNS": "80", "TERM": "dumb", "NO_COLOR": "1"})
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env

def _normalise(text: str, workdir: Path) -> str:
    for path in {str(workdir), os.path.realpath(workdir)}:
        text = text.replace(path + os.sep, "").replace(path, ".")
    text = re.sub(r"\b(127\.0\.0\.1|localhost):\d+", r"\1:PORT", text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"

# ---------------------------------------------------------------- python blocks

class PythonBlock:
    """A ```python block: a script in the page's namespace, or a test file that pytest runs."""

    def __init__(self) -> None:
        self.script = PythonEvaluator()

    def __call__(self, example: Example) -> str | None:
        source = str(example.parsed)
        if not _defines_tests(source):
            cwd = os.getcwd()
            os.chdir(_workdir(example))
            try:
                self.script(example)
            finally:
                os.chdir(cwd)
            return None
        first = source.splitlines()[0].strip()
        named = re.fullmatch(r"#\s*(test_\w+\.py)\b.*", first)
        name = named.group(1) if named else f"test_{Path(example.path).stem.lower()}_line{example.line}.py"
        (_workdir(example) / "examples" / name).write_text(source, encoding="utf-8")
        status, output = _pytest(f"examples/{name}", _workdir(example))
        return None if status == 0 else f"pytest examples/{name} (the block at line {example.line}) exited {status}:\n{output[-6000:]}"

def _defines_tests(source: str) -> bool:
    tree = ast.parse(source)
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test_") for n in tree.body)

def _pytest(target: str, workdir: Path) -> tuple[int, str]:
    """Run pytest on one file of the page's working copy, in this process (as pytester does):
    the same pytest and plugins a user has, without a new interpreter's start-up per block."""
    path, cwd = list(sys.path), os.getcwd()
    shadowed = {name: sys.modules.pop(name) for name in (Path(target).stem, "my_app") if name in sys.modules}
    out = io.StringIO()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            status = pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", str(workdir), target])
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        for name, module in list(sys.modules.items()):  # forget what the copy held; keep libraries loaded
            if str(getattr(module, "__file__", None) or "").startswith(str(workdir)):
                del sys.modules[name]
        sys.modules.update(shadowed)
    return int(status), out.getvalue()

# ---------------------------------------------------------------- console / sh blocks

MARK = "\x1e"  # record separator: never in a command's output

def _commands(block: str) -> list[tuple[str, str]]:
    """(command, shown output) pairs: `$ ` starts a command, `\\` at the end of a line continues it."""
    pairs: list[tuple[str, list[str]]] = []
    continued = False
    for line in block.splitlines():
        if continued:
            pairs[-1] = (pairs[-1][0] + "\n" + line, pairs[-1][1])
        elif line.startswith("$ "):
            pairs.append((line[2:], []))
        elif pairs:
            pairs[-1][1].append(line)
        continued = bool(pairs) and not pairs[-1][1] and line.endswith("\\")
    return [(cmd, "\n".join(out)) for cmd, out in pairs]

INSTALLS = re.compile(r"(^|[\s;&|(])(sudo|apt(-get)?|pip3?|npm|python3? -m pip)\s+(install|ci|remove|uninstall)\b", re.M)
"""What a page may show but never run: it would change the environment the tests run in."""

def _run(cmd: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group, killed whole (servers it started too) after the timeout."""
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"still running after {COMMAND_TIMEOUT_S} s (a server? skip the block and say why):\n{out[-3000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left running in the background
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, out)

def _bash(script: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    if INSTALLS.search(script):
        pytest.fail(f"a page must not install anything when its examples run; put <!-- skip: next --> before it:\n{script}")
    return _run(["bash", "-c", script], workdir)

def evaluate_shell(example: Example) -> str | None:
    block, workdir = str(example.parsed), _workdir(example)
    commands = _commands(block)
    if not commands:
        proc = _bash("set -eo pipefail\n" + block, workdir)
        return None if proc.returncode == 0 else f"script exited {proc.returncode}:\n{proc.stdout}"
    script = "exec 2>&1\n" + "".join(f"{cmd}\nprintf '{MARK}%s{MARK}' $?\n" for cmd, _ in commands)
    outputs = re.split(f"{MARK}(\\d+){MARK}", _bash(script, workdir).stdout)
    checker = doctest.OutputChecker()
    for i, (cmd, shown) in enumerate(commands):
        got, status = (outputs[2 * i], int(outputs[2 * i + 1])) if 2 * i + 1 < len(outputs) else (outputs[-1], -1)
        got, want = _normalise(got, workdir), _normalise(shown, workdir)
        if status != 0 and not shown.strip():
            return f"$ {cmd}\nexited {status}:\n{got}"
        if shown.strip() and not checker.check_output(want, got, doctest.ELLIPSIS):
            return f"$ {cmd}\n" + checker.output_difference(doctest.Example(cmd, want), got, doctest.ELLIPSIS)
    return None

# ---------------------------------------------------------------- a page: one test, its blocks in order

def _copy_repository() -> Path:
    """A working directory holding the repository's files, for one page to run in and write to."""
    workdir = Path(tempfile.mkdtemp(prefix="streamreel-docs-"))
    for entry in ROOT.iterdir():
        if entry.name in NOT_COPIED or COPY_IGNORE(str(ROOT), [entry.name]):
            continue
        if entry.is_dir():
            shutil.copytree(entry, workdir / entry.name, ignore=COPY_IGNORE, symlinks=True)
        else:
            shutil.copy2(entry, workdir / entry.name)
    return workdir

PAGES = Sybil(
    parsers=[
        SkipParser(),
        CodeBlockParser("python", PythonBlock()),
        *(CodeBlockParser(language, evaluate_shell) for language in ("console", "sh", "bash", "shell")),
    ],
)

class Page(pytest.Item):
    """Every block of one page, in order: a page is one test, so that under xdist it runs on one worker."""

    def runtest(self) -> None:
        document = PAGES.parse(self.path)
        document.namespace["__docs_workdir__"] = _copy_repository()
        skipped: list[str] = []
        try:
            for example in document.examples():
                try:
                    example.evaluate()
                except unittest.SkipTest as skip:
                    skipped.append(f"line {example.line}: {skip}")
        finally:
            shutil.rmtree(document.namespace.pop("__docs_workdir__"), ignore_errors=True)
        self.user_properties.append(("skipped blocks", skipped))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"examples in {self.name}"

class PageFile(pytest.File):
    def collect(self) -> list[Page]:
        return [Page.from_parent(self, name="examples")]

def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> PageFile | None:
    """README.md and docs/*.md: the pages users read."""
    rel = file_path.resolve().relative_to(ROOT) if file_path.resolve().is_relative_to(ROOT) else None
    if rel is not None and rel.suffix == ".md" and (rel == Path("README.md") or rel.parent == Path("docs")):
        return PageFile.from_parent(parent, path=file_path)
    return None
