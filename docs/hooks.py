"""mkdocs hooks: the repository's README.md is the site's home page.

Links are written to work on GitHub: the README links to `docs/page.md`, a page links back
to `../README.md`. On the site the README is `index.md` beside the pages, so both are
rewritten, and mkdocs then checks every link and anchor as usual.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

README = Path(__file__).resolve().parent.parent / "README.md"


def on_files(files: Files, config: Any) -> Files:
    text = re.sub(r"\]\(docs/", "](", README.read_text(encoding="utf-8"))
    files.append(File.generated(config, "index.md", content=text))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    return re.sub(r"\]\(\.\./README\.md", "](index.md", markdown)
