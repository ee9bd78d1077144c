"""The docs name the tests that prove each promise; a renamed or deleted test must not
leave a promise pointing at nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")
PLACEHOLDERS = {"tests/path/file.py"}


def _references() -> list[tuple[str, str, str | None]]:
    found = []
    for doc in sorted([*ROOT.joinpath("docs").glob("*.md"), ROOT / "README.md"]):
        for path, name in REFERENCE.findall(doc.read_text()):
            if path not in PLACEHOLDERS:
                found.append((doc.name, path, name or None))
    return sorted(set(found), key=lambda ref: (ref[0], ref[1], ref[2] or ""))


def _defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def test_docs_reference_tests() -> None:
    assert any(doc == "RELIABILITY.md" for doc, _, _ in _references())


@pytest.mark.parametrize(("doc", "path", "name"), _references())
def test_referenced_test_exists(doc: str, path: str, name: str | None) -> None:
    file = ROOT / path
    assert file.is_file(), f"{doc} names {path}, which does not exist"
    if name:
        assert name in _defined(file), f"{doc} names {path}::{name}, which is not defined there"
