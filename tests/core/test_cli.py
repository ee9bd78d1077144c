"""Server-side CLI commands against a throw-away SQLite home."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from PIL import Image

from tests.services import REPO


def _run(home, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXPUNGE_HOME": str(home)}
    env = {k: v for k, v in env.items() if not k.startswith("EXPUNGE_") or k == "EXPUNGE_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_migrate_keys_and_manifest_import(tmp_path) -> None:
    home = tmp_path / "home"
    assert _run(home, "migrate").returncode == 0
    created = _run(home, "keys", "create", "--name", "ci", "--role", "engineer")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("exp_") and key["role"] == "engineer"
    listed = _run(home, "keys", "list").stdout
    assert key["id"] in listed and "active" in listed
    assert _run(home, "keys", "revoke", key["id"]).returncode == 0
    assert "revoked" in _run(home, "keys", "list").stdout

    images = tmp_path / "imgs"
    images.mkdir()
    rows = ["path,label,subject_id,caption,split"]
    for i in range(6):
        Image.new("L", (12, 12), 40 * i).save(images / f"{i}.png")
        rows.append(f"{i}.png,{i % 2},person-{i % 3},a square,{'test' if i == 5 else 'train'}")
    (images / "manifest.csv").write_text("\n".join(rows) + "\n")
    imported = _run(
        home, "datasets", "import-manifest", str(images / "manifest.csv"), "--name", "squares"
    )
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["name"] == "squares"
