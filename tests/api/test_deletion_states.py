"""Every (status, action) pair of a deletion request, through the API: the actions the
states table allows from a status succeed and lead where the table says; every other
decision answers 409 naming the states it needs (``advance``, a re-check, is a no-op
there instead). ``allowed_actions`` on the response is the same
table, for the caller's role; OpenAPI lists the statuses as an enum."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from core.db import make_engine
from core.deletion.states import ACTIONS, STATUSES, TRANSITIONS, RequestStatus
from models.deletion import DeletionRequest

V1 = "/api/v1"
BODIES = {"reject": {"reason": "not our data"}, "extend": {"reason": "many systems"}}


def _key(api, role: str) -> dict[str, str]:
    created = api.post(f"{V1}/keys", json={"name": f"{role}-{uuid.uuid4().hex[:6]}", "role": role})
    return {"Authorization": f"Bearer {created.json()['key']}"}


@pytest.fixture(scope="module")
def officer(api) -> dict[str, str]:
    """A second compliance officer: not the filer, so approving is theirs to do."""
    return _key(api, "compliance")


def _request_in(api, prod_settings, status: str) -> str:
    """A request (filed by the admin, with nothing to delete) put in ``status``."""
    filed = api.post(
        f"{V1}/deletion-requests",
        json={"scope": {"subject_ids": [f"nobody-{uuid.uuid4().hex[:8]}"]}, "legal_basis": "ccpa"},
    ).json()
    engine = make_engine(prod_settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(DeletionRequest)
                .where(DeletionRequest.id == filed["id"])
                .values(status=status, completed_at=None)
            )
    finally:
        engine.dispose()
    return filed["id"]


@pytest.mark.parametrize("status", STATUSES)
def test_every_action_from_every_status(api, anon, prod_settings, officer, status) -> None:
    for name, action in ACTIONS.items():
        request_id = _request_in(api, prod_settings, status)
        shown = anon.get(f"{V1}/deletion-requests/{request_id}", headers=officer).json()
        assert (name in shown["allowed_actions"]) == (status in action.from_states), name
        answer = anon.post(
            f"{V1}/deletion-requests/{request_id}/{name}", headers=officer, json=BODIES.get(name)
        )
        if status not in action.from_states and name == "advance":
            # A re-check, idempotent from any status: a client polling it may see the
            # request complete between two calls. It changes nothing here.
            assert answer.status_code == 200, (status, answer.text)
            assert answer.json()["status"] == status
            continue
        if status not in action.from_states:
            assert answer.status_code == 409, (status, name, answer.text)
            message = answer.json()["detail"]
            assert f"is {status}" in message and name in message, message
            after = anon.get(f"{V1}/deletion-requests/{request_id}", headers=officer).json()
            assert after["status"] == status  # refused: nothing moved
            continue
        assert answer.status_code == 200, (status, name, answer.text)
        now = answer.json()["status"]
        if action.to is not None:
            assert now == action.to
        elif name == "advance":  # a re-check: stays, or moves on along the table
            assert now == status or RequestStatus(now) in TRANSITIONS[RequestStatus(status)]
        else:
            assert now == status


def test_allowed_actions_follow_the_role_and_the_filer(api, anon, prod_settings) -> None:
    request_id = _request_in(api, prod_settings, "awaiting_approval")
    url = f"{V1}/deletion-requests/{request_id}"
    # The admin filed it: everything but approving it (four eyes).
    assert api.get(url).json()["allowed_actions"] == ["reject", "cancel", "extend"]
    assert api.post(f"{url}/approve").status_code == 403
    for role in ("viewer", "engineer"):
        assert anon.get(url, headers=_key(api, role)).json()["allowed_actions"] == []
    officer = _key(api, "compliance")
    assert anon.get(url, headers=officer).json()["allowed_actions"] == [
        "approve",
        "reject",
        "cancel",
        "extend",
    ]
    assert anon.post(f"{url}/extend", headers=officer, json=BODIES["extend"]).status_code == 200
    # One extension: it is no longer offered, and a second one is refused.
    assert "extend" not in anon.get(url, headers=officer).json()["allowed_actions"]
    assert anon.post(f"{url}/extend", headers=officer, json=BODIES["extend"]).status_code == 409


def test_openapi_lists_the_statuses_as_an_enum(api) -> None:
    schemas = api.get(f"{V1}/openapi.json").json()["components"]["schemas"]
    assert schemas["RequestStatus"]["enum"] == list(STATUSES)
    public = schemas["DeletionRequestPublic"]["properties"]
    assert public["status"]["$ref"] == "#/components/schemas/RequestStatus"
    assert public["allowed_actions"]["type"] == "array"
