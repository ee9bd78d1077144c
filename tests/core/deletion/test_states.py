"""The states table refuses a step it does not list with a typed 409, whoever asks (the
workflow's own steps included), and computes the actions a caller may take."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.deletion.states import (
    ACTIONS,
    STATUSES,
    TRANSITIONS,
    RequestStatus,
    TransitionRefused,
    allowed_actions,
    move,
)
from core.errors import Conflict


@pytest.mark.parametrize("source", STATUSES)
@pytest.mark.parametrize("target", STATUSES)
def test_move_follows_the_table(source: str, target: str) -> None:
    request = SimpleNamespace(id="dr_1", status=source)
    if RequestStatus(target) in TRANSITIONS[RequestStatus(source)]:
        move(request, target)
        assert request.status == target
    else:
        with pytest.raises(TransitionRefused, match=f"is {source} and cannot become {target}"):
            move(request, target)
        assert request.status == source


def test_a_refusal_is_a_conflict_and_the_table_covers_every_state() -> None:
    assert issubclass(TransitionRefused, Conflict) and TransitionRefused.status_code == 409
    assert set(TRANSITIONS) == set(RequestStatus)
    for action in ACTIONS.values():
        assert set(action.from_states) <= set(STATUSES)
        if action.to is not None:  # an action's step is one the table allows
            assert all(action.to in TRANSITIONS[RequestStatus(s)] for s in action.from_states)


def test_allowed_actions_need_a_decider_and_a_second_person() -> None:
    def offered(**kw: object) -> list[str]:
        args = {"role": "compliance", "caller": "k2", "created_by": "k1", "extended": False}
        return allowed_actions("awaiting_approval", **{**args, **kw})  # type: ignore[arg-type]

    assert offered() == ["approve", "reject", "cancel", "extend"]
    assert offered(caller="k1") == ["reject", "cancel", "extend"]
    assert offered(extended=True) == ["approve", "reject", "cancel"]
    assert offered(role="engineer") == [] and offered(role="viewer") == []
    assert allowed_actions(
        "completed", role="admin", caller="k", created_by="k1", extended=False
    ) == []
