"""Schemathesis over the whole OpenAPI document, as the admin, against the ASGI app.

Every operation gets a few generated requests (valid and edge-case bodies, parameters
and headers); every response must be below 500 and match the documented status codes,
content types and schemas. Derandomized with a fixed budget, so CI sees the same cases
every run.

Operations are driven from a plain loop with Hypothesis' ``@given`` rather than
schemathesis' pytest plugin, whose fixture loader does not run under pytest 9; one test
per tag keeps failures readable.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.services import ADMIN_KEY

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
TAGS = (
    "health",
    "keys",
    "datasets",
    "models",
    "jobs",
    "methods",
    "deletion-requests",
    "webhooks",
    "audit",
)
# What a response is held to. Not "positive_data_acceptance": a schema-valid body can
# still break a rule JSON Schema cannot state (a label the model does not have, a proof
# position past the end of the log), and those are rightly 422.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]
EXAMPLES = 5

# Operations left out, each with why. (None today: the expensive ones need ids that a
# generated request does not have, so they stop at 404/422 before any work is queued.)
EXCLUDED: dict[str, str] = {}


@pytest.fixture(scope="module")
def operations(app, api) -> list[Any]:  # type: ignore[no-untyped-def]
    """Every operation of the app's own document (``api`` first: the admin key exists)."""
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(operation: Any, mode: schemathesis.GenerationMode) -> list[str]:
    """Run the operation's generated cases; the failures, as text."""
    failures: list[str] = []

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # Negative mode on an operation with nothing to get wrong (no parameters, no
        # body): there is no invalid request to send, which is fine.
        if mode is not schemathesis.GenerationMode.NEGATIVE:
            failures.append(f"{operation.label}: no request could be generated")
    except Exception as exc:  # noqa: BLE001 - collected and reported per operation
        failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def test_every_operation_is_tagged(operations) -> None:
    untagged = [op.label for op in operations if not set(op.tags or []) & set(TAGS)]
    assert not untagged, f"add these operations' tag to TAGS so they are fuzzed: {untagged}"


@pytest.mark.parametrize("tag", TAGS)
def test_operations_conform(operations, api, tag: str) -> None:
    chosen = [op for op in operations if tag in (op.tags or []) and op.label not in EXCLUDED]
    assert chosen, f"no operations tagged {tag!r}"
    try:
        failures = [f for op in chosen for f in _fuzz(op, schemathesis.GenerationMode.POSITIVE)]
        # Invalid input (wrong types, missing fields, out-of-range values) must be a 4xx.
        failures += [f for op in chosen for f in _fuzz(op, schemathesis.GenerationMode.NEGATIVE)]
    finally:
        if tag == "webhooks":  # no generated endpoint may outlive the test and get events
            for hook in api.get("/api/v1/webhooks").json()["data"]:
                api.delete(f"/api/v1/webhooks/{hook['id']}")
    assert not failures, "\n\n".join(failures)
