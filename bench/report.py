"""Helpers the benchmarks share: timing and peak memory, mean ± std, markdown sections.

Every benchmark writes its tables into ``docs/BENCHMARKS.md`` between its own pair of
markers (``<!-- NAME:start -->`` / ``<!-- NAME:end -->``) and leaves the rest of the file
alone, so several benchmarks (and people) can share the page.
"""

from __future__ import annotations

import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"

T = TypeVar("T")

_INTRO = """# Benchmarks

Every number on this page was produced by a command in `bench/`; each section names the
command, the scale and the machine it ran on. Sections are rewritten by their benchmark
between their `<!-- name:start -->` / `<!-- name:end -->` markers; edit the text outside
the markers by hand.

How to read the unlearning tables (the layout of the SalUn paper's): all accuracies are
percentages; **UA** = 100 − accuracy on the forget set, **RA** retain accuracy, **TA** test
accuracy, **MIA** = MIA-efficacy on the forget set (share of forget samples an SVC attack
trained on retain-vs-test confidences judges *non-member*), **Avg. Gap** = mean |Δ| to the
`retrain` row over UA, RA, TA and MIA (0 = indistinguishable from retraining by these four
numbers). Time and speed-up are measured side by side in one run on the same machine;
read the ratios, not the absolute seconds (the CPU machine is shared). Definitions of every
metric are in [methods.md](methods.md#evaluation-metrics).

Machine for the CPU runs unless a section says otherwise: 2 CPU cores (one torch thread,
`torch.set_num_threads(1)`), 24 GiB memory, torch 2.13 CPU build.
"""


# --------------------------------------------------------------------------- measuring


def _proc_status() -> dict[str, int]:
    """VmRSS / VmHWM of this process in KiB (Linux); empty where /proc is missing."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    out = {}
    for key in ("VmRSS", "VmHWM"):
        match = re.search(rf"^{key}:\s+(\d+)", text, re.MULTILINE)
        if match:
            out[key] = int(match.group(1))
    return out


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc ``malloc_trim``).

    Without this, memory an earlier run freed stays in the allocator, the next run reuses
    it without growing RSS, and its peak-RSS delta reads ~0.
    """
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Measured:
    """A call's result, wall time, and peak memory in MiB (see ``memory_kind``)."""

    value: Any
    seconds: float
    peak_mib: float
    memory_kind: str


def measure(fn: Callable[[], T], device: str = "cpu") -> Measured:
    """Run ``fn`` once; wall time, and peak memory it added.

    On CUDA: ``torch.cuda.max_memory_allocated`` during the call (exact, device memory).
    On CPU: peak resident set size during the call minus RSS before it (Linux VmHWM,
    reset through /proc/self/clear_refs), after returning freed heap to the OS with
    ``malloc_trim`` so the call cannot silently reuse it. Memory the allocator keeps in
    other ways (mmap thresholds, torch's caches) can still hide some, so it is a lower
    bound on what the call allocated, comparable between methods in one run, not exact.
    """
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        value = fn()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        return Measured(value, seconds, peak, "CUDA max_memory_allocated − allocated before")
    _release_free_memory()
    reset = _reset_peak_rss()
    before = _proc_status().get("VmRSS", 0)
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    after = _proc_status()
    if reset and after:
        return Measured(value, seconds, max(after["VmHWM"] - before, 0) / 1024, "peak RSS delta")
    return Measured(value, seconds, float("nan"), "unavailable")


# --------------------------------------------------------------------------- formatting


def mean_std(values: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
    """'m ± s' over seeds ('m' alone for one value, '–' for none or all NaN)."""
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64) * scale
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return "–"
    if arr.size == 1:
        return f"{arr[0]:.{digits}f}"
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(device: str = "cpu") -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        where = f"GPU {torch.cuda.get_device_name(0)}"
    else:
        where = f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"
    return (
        f"{where}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
        f"Python {platform.python_version()}"
    )


# --------------------------------------------------------------------------- the page


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->``.

    Creates the page (with its intro) if missing and appends the markers if absent.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else _INTRO
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
