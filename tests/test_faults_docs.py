"""The examples in docs/faults.md run as written, against the bundled captures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _fault_helpers import anthropic_cassette

from streamreel import save

DOC = Path(__file__).resolve().parent.parent / "docs" / "faults.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_doc_has_examples() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_each_python_example_in_the_faults_doc_runs(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cassettes").mkdir()
    save(anthropic_cassette(), tmp_path / "cassettes" / "hello.yaml")
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})
