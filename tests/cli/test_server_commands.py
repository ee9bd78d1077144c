"""Server-side CLI commands (`python -m cli`, as `expunge` runs) on a throw-away SQLite home."""

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
        [sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True, text=True
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


def test_malformed_bootstrap_key_is_one_line_not_a_traceback(tmp_path) -> None:
    """`expunge up` with a bad EXPUNGE_BOOTSTRAP_ADMIN_KEY says what a key looks like."""
    too_long_prefix = "exp_" + "p" * 17 + "_" + "s" * 20
    for bad in ("letmein", "exp_onlyprefix", too_long_prefix, "exp_ok_short"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPUNGE_")}
        env.update(EXPUNGE_HOME=str(tmp_path / "home"), EXPUNGE_BOOTSTRAP_ADMIN_KEY=bad)
        proc = subprocess.run(
            [sys.executable, "-m", "cli", "up", "--no-worker", "--no-demo", "--port", "1"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0, (bad, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "exp_<prefix>_<secret>" in lines[0], proc.stderr
        assert bad not in proc.stderr  # the secret is not echoed back
