"""bench/cost.py at its smallest: two methods on a 200-sample original, nothing written.

No timing asserts (a few hundred samples are all per-run overhead, and the machine is
shared); it checks every requested method ran next to the retrain and got a ratio.
"""

from __future__ import annotations

import math

from bench import cost


def test_cost_smallest() -> None:
    out = cost.main(
        ["--epochs", "2", "--writers", "2", "--methods", "finetune,ssd", "--no-write"]
    )
    assert set(out) == {"small_cnn/2/finetune", "small_cnn/2/ssd"}
    assert all(math.isfinite(r) and r > 0 for r in out.values())
