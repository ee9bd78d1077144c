"""A deletion request's states and transitions, declared once.

The flows and the service move a request only through ``move`` and check a person's
action with ``check_action``; the API shows the status as an enum and each request's
``allowed_actions`` (computed here from the table and the caller's role), and the
database holds the status to the same list with a CHECK constraint. The dashboard
offers exactly ``allowed_actions``: it no longer mirrors these rules by hand.

Imports nothing but the typed errors (the ORM models and the migrations read it too).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from core.errors import Conflict


class RequestStatus(StrEnum):
    received = "received"
    scoped = "scoped"
    awaiting_approval = "awaiting_approval"
    unlearning = "unlearning"
    verifying = "verifying"
    completed = "completed"
    rejected = "rejected"
    failed = "failed"
    cancelled = "cancelled"


S = RequestStatus
STATUSES: tuple[str, ...] = tuple(s.value for s in RequestStatus)
# Still being worked on: the legal deadline runs.
OPEN: tuple[str, ...] = ("received", "scoped", "awaiting_approval", "unlearning", "verifying")
# Not yet approved: a person may still reject or cancel it.
UNDECIDED: tuple[str, ...] = ("received", "scoped", "awaiting_approval")
# Jobs are running or being verified.
MOVING: tuple[str, ...] = ("unlearning", "verifying")

# state → the states it may move to (the workflow's own steps and people's decisions).
TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    S.received: frozenset({S.scoped, S.rejected, S.cancelled}),
    # scoped → completed: nothing to delete; → awaiting_approval: a plan to approve.
    S.scoped: frozenset({S.awaiting_approval, S.completed, S.rejected, S.cancelled}),
    S.awaiting_approval: frozenset({S.unlearning, S.rejected, S.cancelled}),
    # unlearning → completed: every item was retired (no job to verify).
    S.unlearning: frozenset({S.verifying, S.completed, S.failed}),
    S.verifying: frozenset({S.completed, S.failed}),
    S.failed: frozenset({S.unlearning}),  # retry
    S.completed: frozenset(),
    S.rejected: frozenset(),
    S.cancelled: frozenset(),
}


@dataclass(frozen=True)
class Action:
    """A person's action on a request: the states it is taken from, and where it leads
    (``None``: the status stays, e.g. an extension or a re-check)."""

    name: str
    from_states: tuple[str, ...]
    to: RequestStatus | None
    needs: str  # why it is refused elsewhere, for the 409's message


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("approve", ("awaiting_approval",), S.unlearning, "only a request awaiting approval"),
        Action("reject", UNDECIDED, S.rejected, "only a request not yet approved"),
        Action("cancel", UNDECIDED, S.cancelled, "only a request not yet approved"),
        Action("extend", OPEN, None, "only an open request"),
        # A re-check, offered while jobs run; the endpoint is idempotent elsewhere (a
        # client polling it may see the request complete between two calls), so it
        # does not call check_action.
        Action("advance", MOVING, None, "only a request whose jobs run"),
        Action("retry", ("failed",), S.unlearning, "only a failed request"),
    )
}
# Roles that decide on requests; every action above needs one.
DECIDER_ROLES = ("admin", "compliance")


class TransitionRefused(Conflict):
    """An action or a step the request's status does not allow (HTTP 409)."""


class _Request(Protocol):
    id: str
    status: str


def check_action(request: _Request, action: str) -> Action:
    """The action, or a 409 that says which states allow it."""
    spec = ACTIONS[action]
    if request.status not in spec.from_states:
        raise TransitionRefused(
            f"request {request.id} is {request.status}; {action} applies to {spec.needs} "
            f"({', '.join(spec.from_states)})"
        )
    return spec


def move(request: _Request, to: str) -> None:
    """Set the request's status, if the table allows the step (else a 409)."""
    target = RequestStatus(to)
    if target not in TRANSITIONS[RequestStatus(request.status)]:
        allowed = ", ".join(sorted(TRANSITIONS[RequestStatus(request.status)])) or "nothing"
        raise TransitionRefused(
            f"request {request.id} is {request.status} and cannot become {to} "
            f"(it may become: {allowed})"
        )
    request.status = target.value


def allowed_actions(
    status: str, *, role: str | None, caller: str | None, created_by: str | None, extended: bool
) -> list[str]:
    """What this caller may do to a request now: the table's actions from ``status``,
    for deciders only; the filer cannot approve their own request (four eyes), and the
    one extension the law allows cannot be taken twice."""
    if role not in DECIDER_ROLES:
        return []
    out = []
    for action in ACTIONS.values():
        if status not in action.from_states:
            continue
        if action.name == "approve" and caller is not None and caller == created_by:
            continue
        if action.name == "extend" and extended:
            continue
        out.append(action.name)
    return out
