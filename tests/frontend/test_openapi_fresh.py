"""The dashboard's typed client is generated from frontend/openapi.json: it must be the
document the backend prints now, and src/api/schema.d.ts must be generated from it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.services import REPO

FRONTEND = REPO / "frontend"
HOW = (
    "regenerate with `cd frontend && npm run gen:api` (or `python -m cli.openapi >"
    " frontend/openapi.json`, then `npm run gen:api -- --no-fetch`)"
)


def _changed(old: dict, new: dict) -> list[str]:
    out = []
    for section, key in (("paths", None), ("components", "schemas")):
        a = old.get(section, {}) if key is None else old.get(section, {}).get(key, {})
        b = new.get(section, {}) if key is None else new.get(section, {}).get(key, {})
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                state = "added" if name not in a else "removed" if name not in b else "changed"
                out.append(f"{section} {name}: {state}")
    return out


def test_committed_openapi_matches_the_backend() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "cli.openapi"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    committed = (FRONTEND / "openapi.json").read_text()
    if printed != committed:
        changes = _changed(json.loads(committed), json.loads(printed)) or ["formatting only"]
        pytest.fail(f"frontend/openapi.json is stale ({'; '.join(changes[:20])}); {HOW}")


def test_generated_types_match_the_committed_openapi(tmp_path) -> None:
    generator = FRONTEND / "node_modules" / ".bin" / "openapi-typescript"
    if shutil.which("node") is None or not generator.exists():
        pytest.skip("node or frontend/node_modules missing: run `cd frontend && npm ci`")
    out = tmp_path / "schema.d.ts"
    subprocess.run(
        [str(generator), "openapi.json", "-o", str(out), "--root-types", "--alphabetize"],
        cwd=FRONTEND,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert out.read_text() == (FRONTEND / "src" / "api" / "schema.d.ts").read_text(), (
        f"frontend/src/api/schema.d.ts is not generated from openapi.json; {HOW}"
    )
