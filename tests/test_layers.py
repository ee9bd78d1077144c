"""The layer contracts in pyproject.toml ([tool.importlinter]) hold, so the test suite alone
enforces them (test.sh runs lint-imports too); see docs/architecture.md."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _write_config(config: dict, path: Path) -> None:
    """Writes the [tool.importlinter] table back as TOML (strings, lists, booleans only)."""

    def value(item: object) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, list):
            return "[" + ", ".join(value(element) for element in item) + "]"
        return '"' + str(item) + '"'

    lines = ["[tool.importlinter]"]
    lines += [f"{key} = {value(v)}" for key, v in config.items() if key != "contracts"]
    for contract in config["contracts"]:
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{key} = {value(v)}" for key, v in contract.items()]
    path.write_text("\n".join(lines) + "\n")


def test_layer_contracts_are_kept() -> None:
    result = _lint()
    assert result.returncode == 0, f"lint-imports broke:\n{result.stdout}\n{result.stderr}"
    assert "0 broken" in result.stdout, result.stdout


def test_an_unlisted_import_breaks_its_contract(tmp_path: Path) -> None:
    """The contracts bite: every listed debt is a real import, so dropping one ignore (as a
    new import of that kind would) breaks the contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    # The first contract that still lists a debt (api-no-workers lists none any more).
    contract = next(c for c in config["contracts"] if c.get("ignore_imports"))
    dropped = contract["ignore_imports"].pop(0)
    file = tmp_path / "importlinter.toml"
    _write_config(config, file)

    result = _lint("--config", str(file), "--contract", contract["id"])

    assert result.returncode != 0, f"dropping {dropped!r} kept the contract:\n{result.stdout}"
    assert "BROKEN" in result.stdout, result.stdout
    assert dropped.split(" -> ")[0] in result.stdout, result.stdout
