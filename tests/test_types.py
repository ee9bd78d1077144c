"""mypy passes on the contracts package and the engine ([tool.mypy] in pyproject.toml), so
the test suite alone enforces it; test.sh runs mypy too, just before the tests. mypy keeps
its cache in .mypy_cache: warm (as test.sh leaves it) a run takes seconds, cold (a fresh
checkout: torch and transformers read once) a minute or two of CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MYPY = Path(sys.executable).with_name("mypy")

# A cold cache on a busy machine can take minutes; the default per-test limit is 300 s.
pytestmark = pytest.mark.timeout(900)


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MYPY), *args], cwd=ROOT, capture_output=True, text=True, timeout=880)


def test_contracts_and_engine_type_check() -> None:
    result = _mypy()
    assert result.returncode == 0, f"mypy found errors:\n{result.stdout}\n{result.stderr}"
    assert "Success" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("call", "error"),
    [
        # Fields defaulted positionally (Field(16, ...)) are optional only to the pydantic
        # plugin: without it, mypy asks for every one of them.
        ("JudgeParams(seed=1)", None),
        ("JudgeParams(samples_per_class='many')", '"samples_per_class"'),
    ],
)
def test_declarations_are_typed_by_the_pydantic_plugin(
    call: str, error: str | None, tmp_path: Path
) -> None:
    """The check bites, and only where it should: a declaration's constructor takes its
    defaults as optional and its field types as given."""
    use = tmp_path / "use_judge.py"
    use.write_text(f"from contracts.judge import JudgeParams\n\n{call}\n")
    result = _mypy(str(use))
    if error is None:
        assert result.returncode == 0, f"mypy refused a valid call:\n{result.stdout}"
    else:
        assert result.returncode == 1, f"mypy accepted a wrong type:\n{result.stdout}"
        assert error in result.stdout and "[arg-type]" in result.stdout, result.stdout
