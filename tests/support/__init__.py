"""What tests share. Helpers live here (and in ``tests/services.py``, ``tests/fixtures/``
and conftest fixtures), never in a test module: no test module imports another, so each
runs, fails and moves on its own (``tests/test_layout.py`` keeps it so).

``wait_for`` is the one way a test waits for something: it polls, and on time-out names
what it waited for and the last value it saw.
"""

from __future__ import annotations

from tests.services import wait_for

__all__ = ["wait_for"]
