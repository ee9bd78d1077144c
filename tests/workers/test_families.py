"""The runner's one dispatch table: every family runtime's handlers exist, a missing
(kind, family) says so clearly, and loading the table loads no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workers.families import RUNTIMES, UnsupportedJob, handler_for, runtime


@pytest.mark.parametrize(
    ("family", "kind"),
    sorted((r.family, kind) for r in RUNTIMES.values() for kind in r.kinds),
)
def test_every_declared_handler_imports_as_a_function(family: str, kind: str) -> None:
    handler = handler_for(kind, family)
    assert callable(handler)
    assert handler.__name__ == RUNTIMES[family].handlers[kind].rsplit(":", 1)[1]


def test_each_runtime_is_filed_under_its_own_family() -> None:
    assert all(name == r.family for name, r in RUNTIMES.items())
    assert {"classifier", "ddpm", "text2image", "stable_diffusion"} <= set(RUNTIMES)


def test_every_runtime_runs_a_declared_family_and_exactly_its_job_kinds() -> None:
    """The other direction of tests/contracts/test_family.py: the worker runs nothing the
    API would never submit (a runtime for an undeclared family, or an extra kind)."""
    from contracts import UnknownFamily, get_family

    for name, runtime_ in RUNTIMES.items():
        try:
            declared = get_family(name)
        except UnknownFamily:
            pytest.fail(f"the worker has a runtime for {name}, which contracts do not declare")
        assert runtime_.kinds == set(declared.job_kinds), name


def test_a_kind_the_family_does_not_run_is_refused_naming_what_it_runs() -> None:
    with pytest.raises(UnsupportedJob) as info:
        handler_for("train", "stable_diffusion")
    message = str(info.value)
    assert "cannot run 'train' jobs on stable_diffusion models" in message
    assert "generate, unlearn" in message


def test_an_unknown_family_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnsupportedJob, match="no runtime for rnn models.*classifier"):
        runtime("rnn")
    with pytest.raises(UnsupportedJob):
        handler_for("train", "rnn")


def test_the_runner_and_the_table_load_without_torch() -> None:
    code = (
        "import sys, workers.runner, workers.families as f\n"
        "assert f.RUNTIMES\n"
        "loaded = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "", done.stdout
