"""The dashboard's Vitest tests build forms from frontend/src/test/families.json, a copy of
GET /api/v1/families (less causal_lm, which the tests write themselves as a family the
dashboard has no code for). Tests on a stale copy would prove nothing about today's
families, so what drives a form must match the API's answer; wording and policy defaults
may drift. Regenerate with `python -m tests.frontend.test_families_fixture`."""

from __future__ import annotations

import json
import sys
from typing import Any

from api.families import service
from api.families.schemas import FamilyPublic
from tests.services import REPO

FIXTURE = REPO / "frontend" / "src" / "test" / "families.json"
# What the dashboard's forms read; the other fields (title, summary, docs, methods,
# uploadable, policy_defaults) are shown as text or not at all.
FORM_FIELDS = (
    "name",
    "data",
    "architectures",
    "architecture_schema",
    "params_schemas",
    "job_kinds",
    "scopes",
    "judged",
    "judge_schema",
)
WRITTEN_BY_THE_TESTS = "causal_lm"


def api_answer() -> list[dict[str, Any]]:
    """The families as the API serialises them, less the one the tests write themselves."""
    return [
        FamilyPublic.model_validate(family).model_dump(mode="json")
        for family in service.list_families()
        if family["name"] != WRITTEN_BY_THE_TESTS
    ]


def _form_part(families: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f["name"]: {k: f.get(k) for k in FORM_FIELDS} for f in families}


def test_the_dashboard_fixture_is_what_the_api_answers() -> None:
    committed = _form_part(json.loads(FIXTURE.read_text()))
    current = _form_part(api_answer())
    stale = sorted(
        f"{name}.{field}"
        for name in committed.keys() | current.keys()
        for field in FORM_FIELDS
        if committed.get(name, {}).get(field) != current.get(name, {}).get(field)
    )
    assert not stale, (
        f"frontend/src/test/families.json is stale ({', '.join(stale[:20])}); regenerate with "
        "`.venv/bin/python -m tests.frontend.test_families_fixture`"
    )


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(api_answer(), indent=1) + "\n")
    sys.stdout.write(f"{FIXTURE.relative_to(REPO)} written\n")
