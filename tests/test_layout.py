"""Tests do not lean on each other: no module imports a test module (shared helpers live
in ``tests/support/``, ``tests/services.py``, ``tests/fixtures/`` and conftest fixtures),
and the benchmarks import nothing from ``tests/`` (they share ``bench/services.py``).

Imports are read with ``ast``, so a violation is found without importing anything."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, absolute; ``from a import b`` yields ``a`` and ``a.b``
    (``b`` may be a module), and relative imports are resolved against the file's package."""
    package = _module_name(path).split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def is_test_module(module: str) -> bool:
    """A module pytest collects: ``tests.<...>.test_<name>``."""
    parts = module.split(".")
    return parts[0] == "tests" and parts[-1].startswith("test_")


def _imports_of_test_modules(root: Path) -> list[str]:
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for module in sorted(imported_modules(path)):
            if is_test_module(module) and module != _module_name(path):
                offenders.append(f"{path.relative_to(REPO)} imports {module}")
    return offenders


def test_no_module_imports_a_test_module() -> None:
    offenders = _imports_of_test_modules(REPO / "tests")
    assert not offenders, "move what they share into tests/support/:\n" + "\n".join(offenders)


def test_bench_imports_nothing_from_tests() -> None:
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for path in sorted((REPO / "bench").rglob("*.py"))
        for module in sorted(imported_modules(path))
        if module == "tests" or module.startswith("tests.")
    ]
    assert not offenders, "share it through bench/services.py:\n" + "\n".join(offenders)


def test_the_checks_see_every_form_of_import(tmp_path: Path, monkeypatch) -> None:
    """The checks above can fail: each way of importing a test module is caught."""
    package = tmp_path / "tests" / "api"
    package.mkdir(parents=True)
    sample = package / "test_sample.py"
    sample.write_text(
        "import tests.integration.test_a\n"
        "from tests.integration.test_b import helper\n"
        "from tests.integration import test_c\n"
        "from .test_d import helper\n"
        "from . import test_e\n"
        "from tests.support.rest import new_model\n"
        "def later():\n"
        "    from tests.workers.test_f import helper\n"
    )
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    found = {line.split(" imports ")[1] for line in _imports_of_test_modules(tmp_path / "tests")}
    assert found == {
        "tests.integration.test_a",
        "tests.integration.test_b",
        "tests.integration.test_c",
        "tests.api.test_d",
        "tests.api.test_e",
        "tests.workers.test_f",
    }
