"""`uvicorn api.main:app` run directly (not through `expunge up`/`expunge api`)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.services import REPO


def test_malformed_bootstrap_key_under_uvicorn_is_one_line_not_a_traceback(tmp_path) -> None:
    """The same one line as `expunge up` (tests/cli/test_server_commands.py), and a failing exit."""
    for bad in ("letmein", "exp_ok_short"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPUNGE_")}
        env.update(EXPUNGE_HOME=str(tmp_path / "home"), EXPUNGE_BOOTSTRAP_ADMIN_KEY=bad)
        proc = subprocess.run(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", "1"],
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
