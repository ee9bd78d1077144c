"""Schemathesis over the whole OpenAPI document, as the admin, against the ASGI app.

Every operation gets a few generated requests (valid and edge-case bodies, parameters
and headers); every response must be below 500 and match the documented status codes,
content types and schemas. Derandomized with a fixed budget, so CI sees the same cases
every run. The operations issue #12 found 500s in get many more cases each, and a
stateful run chains operations by their links (an id one answer returns feeds the next
request) under a fixed sequence of seeds.

Operations are driven from a plain loop with Hypothesis' ``@given`` rather than
schemathesis' pytest plugin, whose fixture loader does not run under pytest 9; one test
per tag keeps failures readable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, FlakyStrategyDefinition, Unsatisfiable
from hypothesis.stateful import get_state_machine_test

from tests.services import ADMIN_KEY

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
TAGS = (
    "health",
    "keys",
    "datasets",
    "models",
    "jobs",
    "methods",
    "families",
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


# What goes into an uploaded CSV besides generated text: the line ends, quotes and bytes
# a spreadsheet export or a wrong encoding produces. The document only says "binary", so
# without this a generated file is a few random characters (or the word "filename").
CSV_PIECES = st.one_of(
    st.sampled_from(["\r", "\n", "\r\n", ",", '"', "\x00", "m\u00fcller", "\ufeff"]),
    st.text(max_size=12),
)
CSV_HEADER = "subject_id,legal_basis\n"
CSV_FILES = st.one_of(
    st.lists(CSV_PIECES, max_size=8).map(lambda p: f"{CSV_HEADER}{''.join(p)}".encode()),
    st.binary(max_size=64).map(lambda b: b"subject_id\n" + b),
    st.lists(CSV_PIECES, max_size=8).map(
        lambda p: f"subject_id\n{''.join(p)}".encode("latin-1", "replace")
    ),
)


def with_hostile_files(schema: Any) -> Any:
    """Every multipart ``file`` of a CSV operation gets :data:`CSV_FILES` content."""

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
        if context.operation.path.endswith("/bulk") and isinstance(body, dict) and "file" in body:
            return CSV_FILES.map(lambda data: {**body, "file": data})
        return st.just(body)

    return schema


@pytest.fixture(scope="module")
def operations(app, api) -> list[Any]:  # type: ignore[no-untyped-def]
    """Every operation of the app's own document (``api`` first: the admin key exists)."""
    schema = with_hostile_files(schemathesis.openapi.from_asgi("/api/v1/openapi.json", app))
    return [result.ok() for result in schema.get_all_operations()]


def _fuzz(
    operation: Any, mode: schemathesis.GenerationMode, examples: int = EXAMPLES
) -> list[str]:
    """Run the operation's generated cases; the failures, as text."""
    failures: list[str] = []

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=examples,
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


# Where issue #12 found 5xx (an unhashable family, a CSV the csv module chokes on), many
# more cases each: 5 are too few to hit a lone CR or a NUL byte in a generated file.
DEEP = {
    "POST /api/v1/deletion-requests/bulk": 40,
    "POST /api/v1/models": 40,
    "POST /api/v1/keys": 30,
}


@pytest.mark.parametrize("label", DEEP)
def test_issue_12_operations_in_depth(operations, api, label: str) -> None:
    (operation,) = [op for op in operations if op.label == label]
    failures = _fuzz(operation, schemathesis.GenerationMode.POSITIVE, DEEP[label])
    failures += _fuzz(operation, schemathesis.GenerationMode.NEGATIVE, DEEP[label])
    assert not failures, "\n\n".join(failures)


# --------------------------------------------------------------------------- stateful

# Operations the stateful run leaves out, each with why. The links hand them real ids,
# which the per-operation run above never has.
STATEFUL_EXCLUDED = {
    # A live job's event stream stays open until the job ends; no worker runs here.
    ("GET", "/api/v1/jobs/{job_id}/events"),
    # Revoking a linked key id could revoke the key the run (or the session) uses.
    ("DELETE", "/api/v1/keys/{key_id}"),
    # A checkpoint upload to a linked model is validated in a subprocess that loads
    # torch (seconds each); the per-operation run above covers the route.
    ("POST", "/api/v1/models/{model_id}/versions"),
}
DEBUG = bool(__import__("os").environ.get("FUZZ_DEBUG"))
STATEFUL_SEED = 20261204
STATEFUL_SCENARIOS = 100  # per run
STATEFUL_STEPS = 8
STATEFUL_RUNS = 20
STATEFUL_CALLS = 400  # the whole budget, over the runs


@pytest.fixture
def fuzz_key(api) -> Iterator[tuple[str, str]]:
    """An admin key of the stateful run's own, so what it created can be found after."""
    made = api.post("/api/v1/keys", json={"name": "schemathesis-stateful", "role": "admin"})
    assert made.status_code == 201, made.text
    yield made.json()["id"], made.json()["key"]
    api.delete(f"/api/v1/keys/{made.json()['id']}")


def test_stateful_links_never_5xx(app, api, fuzz_key) -> None:
    """Chains of operations joined by their links (an id one call returns is fed to the
    next): create a model, then read it, upload to it, put a policy on it; file a request,
    then approve, extend, comment on it; ... Positive and negative data, fixed seeds. No
    response may be a 5xx or stray from the document."""
    key_id, raw = fuzz_key
    schema = with_hostile_files(schemathesis.openapi.from_asgi("/api/v1/openapi.json", app))
    for method, path in STATEFUL_EXCLUDED:
        schema = schema.exclude(method=method, path=path)
    headers = {"Authorization": f"Bearer {raw}"}
    failures: dict[str, str] = {}
    calls: list[str] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: schemathesis.Case, **_: Any) -> None:
            # Collected, not raised: the server's state changes under the run, so a
            # replay that shrinks a failure cannot be trusted; the first sighting can.
            calls.append(case.operation.label)
            if DEBUG:
                print("CALL", case.operation.label, response.status_code, repr(case.body)[:100])
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:  # noqa: BLE001 - reported below, one per operation
                failures.setdefault(case.operation.label, f"{exc}\n{case.as_curl_command()}")

    run_settings = settings(
        max_examples=STATEFUL_SCENARIOS,
        stateful_step_count=STATEFUL_STEPS,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    try:
        # Links make what is drawn depend on what the server answered, which Hypothesis
        # takes for a flaky strategy once its state differs from a run it remembers; a
        # run that stops so goes on under the next of a fixed sequence of seeds.
        for attempt in range(STATEFUL_RUNS):
            if len(calls) >= STATEFUL_CALLS:
                break
            test = get_state_machine_test(Workflow, settings=run_settings, _min_steps=2)
            try:
                seed(STATEFUL_SEED + attempt)(test)()
            except (Flaky, FlakyStrategyDefinition):
                continue
    finally:
        _clean_up_after(app, api, key_id)
    assert len(calls) >= STATEFUL_CALLS // 2, f"only {len(calls)} calls were made"
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())


def _clean_up_after(app, api, key_id: str) -> None:  # type: ignore[no-untyped-def]
    """No generated job may wait in a queue for a later test's worker, no generated
    webhook may get later tests' events."""
    from models import Job

    with app.state.session_factory() as session:
        jobs = session.query(Job.id).filter(Job.created_by == key_id, Job.state == "queued")
        job_ids = [row.id for row in jobs]
    for job_id in job_ids:
        api.post(f"/api/v1/jobs/{job_id}/cancel")
    for hook in api.get("/api/v1/webhooks").json()["data"]:
        api.delete(f"/api/v1/webhooks/{hook['id']}")
