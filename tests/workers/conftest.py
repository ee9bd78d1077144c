"""Shared fixtures for worker tests.

The CI and dev machines are small and shared, so torch runs single-threaded in tests
(this also makes CPU results reproducible across runs).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_torch() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
