"""The deletion-request workflow: multi-step, separate from single-entity services.

file → (scope, taint, plan) awaiting_approval → approve (another person) → unlearning:
one job per affected version → verify each (approximate results against the policy's
thresholds, else the exact fallback) → close: the new versions replace the tainted ones,
old checkpoints and the subject's raw bytes are purged, a new dataset version recorded,
and a signed certificate issued. Functions never commit; they return the jobs the caller
dispatches after committing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from contracts import get_family
from core import webhooks
from core.audit.events import commit_subject, subject_salt
from core.audit.log import append as audit
from core.audit.trail import version_status
from core.deletion import purge, repository
from core.deletion.lm import LM_FAMILY, inherits_affected_base, stops_at_holdout
from core.deletion.lm import lineage as lm_lineage
from core.deletion.lm import unverifiable_reason as lm_unverifiable
from core.deletion.policy import (
    NOT_CERTIFIED,
    DeletionPolicy,
    exact_evidence,
    verify,
)
from core.deletion.pricing import Pricing, price
from core.deletion.redact import redact_request
from core.deletion.scope import resolve
from core.deletion.shadows import shadow_plan, uses_shadows
from core.deletion.states import check_action, move
from core.errors import Conflict, Forbidden
from core.jobspecs import new_unlearn_job, unlearn_spec, workflow_keys
from core.lineage import resolve_forget, scope_hash
from core.settings import Settings
from core.storage import ObjectStore
from models import DatasetVersion, Job, Model, ModelVersion
from models.base import new_id, utcnow
from models.deletion import (
    OPEN_STATUSES,
    DeletionItem,
    DeletionRequest,
)

log = logging.getLogger("expunge.deletion")

DEADLINES = {  # first answer, and the one extension the law allows
    "gdpr_art17": (relativedelta(months=1), relativedelta(months=2)),
    "ccpa": (relativedelta(days=45), relativedelta(days=45)),
    "other": (relativedelta(months=1), relativedelta(months=2)),
}
SYSTEM = "system"


def due_date(basis: str, received_at: datetime) -> datetime:
    return received_at + DEADLINES[basis][0]


def lock_request(session: Session, request_id: str) -> DeletionRequest | None:
    """Serialise workflow steps on one request, on Postgres and on SQLite alike.

    The worker finishing a job and the sweeper can advance the same request at once.
    ``SELECT ... FOR UPDATE`` is ignored by SQLite, so the lock is a no-op UPDATE issued
    before anything is read: it takes the row lock on Postgres and the write lock on
    SQLite, so the second caller waits and then reads the first one's outcome.
    """
    touched = session.execute(
        update(DeletionRequest)
        .where(DeletionRequest.id == request_id)
        .values(status=DeletionRequest.status)
        .execution_options(synchronize_session=False)
    )
    if not touched.rowcount:  # type: ignore[attr-defined]
        return None
    return session.get(DeletionRequest, request_id, populate_existing=True)


def policy_for(model: Model) -> DeletionPolicy:
    return DeletionPolicy.for_family(model.family, model.deletion_policy)


def emit(
    session: Session, request: DeletionRequest, actor: str, action: str, **payload: Any
) -> int:
    """Append ``deletion_request.<action>`` to the audit log and queue its webhooks."""
    event = audit(
        session, actor, f"deletion_request.{action}", "deletion_request", request.id, payload
    )
    announce(session, request, event.action, event.seq, event.at)
    return event.seq


def announce(
    session: Session, request: DeletionRequest, action: str, seq: int, at: datetime
) -> None:
    """Queue the webhooks for a state change, in its transaction (no ids of people)."""
    webhooks.enqueue(
        session,
        action,
        {
            "occurred_at": at.isoformat(),
            "audit_seq": seq,
            "request": {
                "id": request.id,
                "status": request.status,
                "legal_basis": request.legal_basis,
                "due_at": request.due_at.isoformat(),
            },
        },
    )


def file_request(
    session: Session,
    *,
    scope_kind: str,
    values: list[Any],
    model_id: str | None,
    legal_basis: str,
    requester_reference: str,
    received_at: datetime,
    actor: str,
    settings: Settings,
    concept_name: str | None = None,
) -> DeletionRequest:
    """Record the request, resolve its blast radius, taint what it touches, plan.

    A concept's name (a style, a person's label name) stays on the request row, never in
    the audit log: the log holds no personal data, only the labels' count."""
    request = DeletionRequest(
        id=new_id("dr"),
        status="received",
        scope={
            scope_kind: values,
            **({"model_id": model_id} if model_id else {}),
            **({"concept_name": concept_name} if concept_name else {}),
        },
        scope_kind=scope_kind,
        legal_basis=legal_basis,
        requester_reference=requester_reference,
        received_at=received_at,
        due_at=due_date(legal_basis, received_at),
        created_by=actor,
    )
    session.add(request)
    session.flush()
    emit(
        session,
        request,
        actor,
        "received",
        legal_basis=legal_basis,
        scope_kind=scope_kind,
        count=len(values),
    )
    radius = resolve(session, scope_kind, values, model_id=model_id)
    if scope_kind == "labels":
        radius.samples, radius.sample_ids = {}, {}  # a class is not personal data: keep bytes
    request.blast_radius = radius.summary()
    move(request, "scoped")
    emit(
        session,
        request,
        SYSTEM,
        "scoped",
        **{k: v for k, v in request.blast_radius.items() if k != "versions" and k != "descendants"},
        versions=len(radius.direct),
        descendants=len(radius.descendants),
    )
    if radius.empty:
        move(request, "completed")
        request.completed_at = utcnow()
        emit(session, request, SYSTEM, "completed", outcome="nothing_to_delete")
        from core.deletion.certificate import issue

        issue(session, request, settings)
        redact_request(session, settings, request)  # closed: ids only as commitments now
        return request
    affected = radius.direct + radius.descendants
    version_status(session, SYSTEM, affected, "tainted", deletion_request_id=request.id)
    session.execute(
        update(ModelVersion).where(ModelVersion.id.in_(affected)).values(status="tainted")
    )
    # A language model fine-tuned from a base version the request also affects is retired
    # like a descendant: its exact path re-fine-tunes that base, which holds the data.
    inherited = inherits_affected_base(session, radius.direct, radius.descendants)
    request.plan = [
        _plan_item(session, request, vid, vid in radius.descendants or vid in inherited)
        for vid in affected
    ]
    move(request, "awaiting_approval")
    emit(session, request, SYSTEM, "planned", items=len(request.plan))
    return request


def _train_seconds(session: Session, version: ModelVersion) -> float | None:
    producer = session.get(Job, version.job_id) if version.job_id else None
    return producer.wall_seconds if producer else None


def _choose_method(
    session: Session, request: DeletionRequest, version: ModelVersion, descendant: bool
) -> tuple[str, bool, float]:
    """(method, exact, estimated seconds) the model's policy chooses for this version."""
    method, exact, estimate, _ = _priced_choice(session, request, version, descendant)
    return method, exact, estimate


def _priced_choice(
    session: Session, request: DeletionRequest, version: ModelVersion, descendant: bool
) -> tuple[str, bool, float, Pricing | None]:
    """``_choose_method`` with its pricing: an approximate method estimated to cost more
    than the policy allows, or expected to cost more than it saves once its chance of
    failing is priced in, gives way to the exact fallback at once."""
    model = session.get(Model, version.model_id)
    assert model is not None
    policy = policy_for(model)
    train_seconds = _train_seconds(session, version) or 0
    if descendant:
        return "retire", True, 0.0, None
    if version.config.get("sisa"):
        return "sisa", True, train_seconds * 0.25, None
    if request.scope_kind == "labels":
        method, estimate = policy.class_method, train_seconds * 0.1
        params = policy.class_method_params
    else:
        method, estimate = policy.method, train_seconds * 0.2
        params = policy.method_params
    if method in ("retrain", "sisa"):
        # An exact method chosen by the policy (a ddpm's default for subjects) costs what
        # training cost.
        return method, True, train_seconds * (1.0 if method == "retrain" else 0.25), None
    if model.family == LM_FAMILY and lm_unverifiable(session, version, stops_at_holdout(params)):
        # No held-out people or world facts: the verdict could not be computed, so the
        # run would only precede the fallback.
        return _exact_fallback(policy), True, train_seconds, None
    pricing = price(session, model, version, policy, method, params, request.scope)
    if pricing is None:
        return method, False, estimate, None
    if pricing.choice == "exact":
        return _exact_fallback(policy), True, train_seconds, pricing
    return method, False, train_seconds * pricing.estimate_fraction, pricing


def _exact_fallback(policy: DeletionPolicy) -> str:
    return policy.fallback if policy.fallback in ("retrain", "sisa") else "retrain"


def _plan_item(
    session: Session, request: DeletionRequest, version_id: str, descendant: bool
) -> dict[str, Any]:
    version = session.get(ModelVersion, version_id)
    assert version is not None
    model = session.get(Model, version.model_id)
    assert model is not None
    policy = policy_for(model)
    train_seconds = _train_seconds(session, version)
    method, exact, estimate, pricing = _priced_choice(session, request, version, descendant)
    # Why a language model's approximate method gave way to the exact path, if it did.
    lm_note = (
        lm_unverifiable(session, version, stops_at_holdout(policy.method_params))
        if model.family == LM_FAMILY and exact and not descendant and method != policy.method
        else None
    )
    item = DeletionItem(
        id=new_id("dri"),
        request_id=request.id,
        model_version_id=version_id,
        state="planned",
        method=method,
        exact=exact,
    )
    session.add(item)
    return {
        "item_id": item.id,
        "model_version_id": version_id,
        "model_id": version.model_id,
        "method": method,
        "exact": exact,
        "fallback": None if exact else policy.fallback,
        "estimated_seconds": round(estimate, 1) if train_seconds else None,
        "retrain_seconds": train_seconds,
        "note": "fine-tuned from an affected version: retired, as no method can remove what "
        "it inherited"
        if descendant
        else (pricing.reason if pricing is not None and pricing.choice == "exact" else None)
        or lm_note,
        # The estimate against the retrain, the priced chance of failing and the choice.
        "cost": pricing.as_dict() if pricing is not None else None,
        # The strong test's shadows: their one-off cost, or the bank already paid for.
        "shadows": shadow_plan(
            session,
            version,
            policy.shadow_models,
            train_seconds,
            uses_shadows(model.family, request.scope_kind, exact),
        ),
        # A language model's base and fine-tune, and whether the base can have seen the data.
        **({"lineage": lm} if (lm := lm_lineage(session, version, _affected(request))) else {}),
    }


def _affected(request: DeletionRequest) -> set[str]:
    """The versions the request's blast radius holds (trained on the data, or descended)."""
    radius = request.blast_radius or {}
    return set(radius.get("versions") or []) | set(radius.get("descendants") or [])


def approve(session: Session, request: DeletionRequest, actor: str) -> list[Job]:
    check_action(request, "approve")
    if actor == request.created_by:
        raise Forbidden("the person who filed a request cannot approve it; ask a second approver")
    request.approved_by, request.approved_at = actor, utcnow()
    move(request, "unlearning")
    emit(session, request, actor, "approved")
    jobs = []
    for item in repository.items(session, request.id):
        window = _batch_window(session, item)
        if window and item.method != "retire":
            _hold(item, request.approved_at + timedelta(seconds=window), "waiting for batch")
        elif job := _start(session, request, item):
            jobs.append(job)
    return jobs


def _batch_window(session: Session, item: DeletionItem) -> int:
    version = session.get(ModelVersion, item.model_version_id)
    model = session.get(Model, version.model_id) if version else None
    return policy_for(model).batch_window_seconds if model else 0


def _hold(item: DeletionItem, until: datetime, why: str) -> None:
    """Park an item until ``until``; ``start_batches`` then runs it with its version's peers."""
    item.state, item.batch_until = "waiting", until
    item.history = [
        *item.history,
        {"at": utcnow().isoformat(), "event": "waiting", "until": until.isoformat(), "why": why},
    ]


def _start(session: Session, request: DeletionRequest, item: DeletionItem) -> Job | None:
    """Submit the item's unlearning job (or retire it outright)."""
    if item.method != "retire" and repository.busy_elsewhere(
        session, item.model_version_id, {request.id}
    ):
        _hold(item, utcnow(), "waiting for another request's run on this version to close")
        return None
    return _submit(session, [(request, item)])


def policy_device(policy: DeletionPolicy, scope_kind: str) -> str:
    """The torch device a model's policy asks its deletion runs to use ("cpu" if none)."""
    first = policy.class_method_params if scope_kind == "labels" else policy.method_params
    other = policy.method_params if scope_kind == "labels" else policy.class_method_params
    return str(first.get("device") or other.get("device") or "cpu")


def _submit(session: Session, members: list[tuple[DeletionRequest, DeletionItem]]) -> Job | None:
    """One unlearning job for items of one version, method and scope kind: the union of
    their requests' scopes is forgotten in one run, producing one new version."""
    request, item = members[0]
    version = session.get(ModelVersion, item.model_version_id)
    assert version is not None
    if item.method == "retire":
        for _, each in members:
            each.state = "done"
            each.history = [*each.history, {"at": utcnow().isoformat(), "event": "retired"}]
        return None
    model = session.get(Model, version.model_id)
    assert model is not None and version.dataset_version_id and version.training_mask is not None
    dsv = session.get(DatasetVersion, version.dataset_version_id)
    assert dsv is not None
    kind = request.scope_kind
    values = sorted({v for r, _ in members for v in r.scope[kind]}, key=str)
    forget = {kind: values}
    resolution = resolve_forget(session, dsv.dataset_id, dsv.version, version.training_mask, forget)
    policy = policy_for(model)
    params = (
        {}
        if item.method in ("sisa", "retrain")
        else (policy.class_method_params if kind == "labels" else policy.method_params)
    )
    if resolution.retain_count == 0:
        for _, each in members:
            each.method, each.exact, each.state = "retire", True, "done"
        return None
    if len(resolution.forget_positions) == 0:
        # A retargeted version whose earlier run already removed all of this scope.
        for _, each in members:
            each.method, each.exact, each.state = "none", True, "done"
            each.result_version_id = version.id
            each.history = [
                *each.history,
                {"at": utcnow().isoformat(), "event": "nothing left to forget in this version"},
            ]
        return None
    # The policy's device decides the queue, for the exact fallback too: a policy that
    # asks for a GPU must reach a GPU worker (it used to be enqueued on "cpu" always).
    device = str(params.get("device") or policy_device(policy, kind))
    if item.method in ("sisa", "retrain") and device != "cpu":
        params = {"device": device}
    exact = item.method in ("sisa", "retrain")
    spec = unlearn_spec(
        forget=forget,
        forget_kind=kind,
        forget_hash=scope_hash(forget),
        forget_count=len(resolution.forget_positions),
        dataset_version=dsv,
        evaluate=True,
        exact=exact,
        family=model.family,
        # Judged families always carry a judge object, as from the API (the worker fills
        # what the policy leaves empty with the defaults).
        judge=dict(policy.judge or {}) if get_family(model.family).judged else None,
        shadow_models=policy.shadow_models if uses_shadows(model.family, kind, exact) else None,
    )
    spec.update(workflow_keys([r.id for r, _ in members], [i.id for _, i in members]))
    if model.family == LM_FAMILY:
        spec.update(_lm_run_keys(policy, item, exact))
    job = new_unlearn_job(session, version, item.method, params, spec, SYSTEM, device=device)
    for member_request, each in members:
        each.attempt += 1
        each.job_id, each.state, each.batch_until = job.id, "unlearning", None
        each.history = [
            *each.history,
            {
                "at": utcnow().isoformat(),
                "event": "started",
                "method": each.method,
                "job_id": job.id,
                "batch_size": len(members),
            },
        ]
        if len(members) > 1:
            emit(
                session,
                member_request,
                SYSTEM,
                "batch_started",
                item=each.id,
                job=job.id,
                requests=len(members),
            )
    return job


def _lm_run_keys(policy: DeletionPolicy, item: DeletionItem, exact: bool) -> dict[str, Any]:
    """How a language model's deletion run evaluates, beyond what every unlearn job reads.

    Its evaluation (minutes on a CPU) is most of the run: it scores at most
    ``lm_eval_items`` questions per group; an approximate run first asks whether the
    untouched version is distinguishable at all under the thresholds (``precheck``: when
    it is not, no result could be certified and the method is not run); ``calibration``
    sets aside the held-out people a ``stop_at_holdout`` method stops by; and a run after
    an attempt on the same version reuses that attempt's evaluation of the original
    instead of scoring the same model again."""
    t = policy.thresholds
    keys: dict[str, Any] = {"eval_max_items": t.lm_eval_items}
    if not exact:
        keys["precheck"] = t.model_dump(mode="json")
    if stops_at_holdout(policy.method_params):
        # The method's stop rule calibrates on some held-out people; the exact fallback
        # sets them aside too, so every run of the request is judged on the same ones.
        keys["calibration"] = True
    earlier = next(
        (
            h["job_id"]
            for h in reversed(item.history)
            if h.get("event") == "attempt" and h.get("original_evaluation") and h.get("job_id")
        ),
        None,
    )
    if earlier:
        keys["original_evaluation_job_id"] = earlier
    return keys


def start_batches(session: Session, now: datetime | None = None) -> list[Job]:
    """Start one run per version whose batch window has closed, over all its waiting items.

    Items of a version wait while a sibling still has a finished job to be read (its
    request not yet advanced): after a batch fails verification, every member falls back
    together, in one run again.
    """
    now = now or utcnow()
    rows = session.execute(
        select(DeletionItem, DeletionRequest)
        .join(DeletionRequest, DeletionRequest.id == DeletionItem.request_id)
        .where(
            DeletionItem.state == "waiting",
            DeletionRequest.status.in_(("unlearning", "verifying")),
        )
        .order_by(DeletionItem.id)
        .with_for_update(skip_locked=True, of=DeletionItem)
    ).all()
    groups: dict[tuple[str, str, str], list[tuple[DeletionRequest, DeletionItem]]] = {}
    for item, request in rows:
        key = (item.model_version_id, item.method, request.scope_kind)
        groups.setdefault(key, []).append((request, item))
    jobs = []
    for (version_id, _, _), members in groups.items():
        due = min(i.batch_until or now for _, i in members)
        members_ids = {r.id for r, _ in members}
        if (
            due > now
            or repository.unread_siblings(session, version_id)
            or repository.busy_elsewhere(session, version_id, members_ids)
        ):
            continue
        if job := _submit(session, members):
            jobs.append(job)
    return jobs


def advance(
    session: Session, store: ObjectStore, settings: Settings, request: DeletionRequest
) -> list[Job]:
    """Move a request on from whatever its jobs did since last time (idempotent)."""
    if request.status not in ("unlearning", "verifying"):
        return []
    jobs: list[Job] = []
    items = repository.items(session, request.id)
    for item in items:
        if item.state != "unlearning" or item.job_id is None:
            continue
        job = session.get(Job, item.job_id)
        if job is None or job.state not in ("succeeded", "failed", "cancelled"):
            continue
        if request.status != "verifying":
            move(request, "verifying")
        if job.state == "succeeded":
            verdict = _keep_attempt(item, job, _verdict(session, request, item, job))
            if verdict["passed"]:
                item.state, item.result_version_id = "done", job.result_version_id
                emit(
                    session,
                    request,
                    SYSTEM,
                    "verified",
                    item=item.id,
                    method=item.method,
                    exact=item.exact,
                )
                continue
            reason = f"verification failed: {verdict.get('reason') or 'a check failed'}"
            _discard_candidate(session, store, request, item, job)
        else:
            reason = f"job {job.state}: {job.error or ''}".strip()
            _keep_attempt(
                item,
                job,
                {
                    "passed": False,
                    "exact": item.exact,
                    "checks": [],
                    "reason": reason,
                    "level": NOT_CERTIFIED,
                    "evidence": f"not certified (the run ended {job.state})",
                    "method": item.method,
                },
            )
        # A job's error text may quote a subject id: the log gets the run's state only.
        logged = reason if job.state == "succeeded" else f"job {job.state} (see job {job.id})"
        emit(
            session, request, SYSTEM, "item_failed", item=item.id, method=item.method, reason=logged
        )
        fallback = None if item.exact else policy_for(session.get(Model, job.model_id)).fallback
        if fallback and _fell_back(item):
            # The fallback ran and failed too (a policy may name an approximate one):
            # never a second round, or an item could loop between two failing runs.
            fallback = None
        if fallback:
            item.method, item.exact = fallback, fallback in ("retrain", "sisa")
            item.history = [
                *item.history,
                {
                    "at": utcnow().isoformat(),
                    "event": "fallback",
                    "reason": reason,
                    "method": fallback,
                },
            ]
            if len((job.spec or {}).get("deletion_item_ids") or [item.id]) > 1:
                # A batch falls back as a batch: start_batches reruns its members together.
                _hold(item, utcnow(), f"fallback to {fallback} with its batch")
            else:
                new = _start(session, request, item)
                if new is not None:
                    jobs.append(new)
        else:
            item.state = "failed"
            item.history = [
                *item.history,
                {"at": utcnow().isoformat(), "event": "failed", "reason": reason},
            ]
    busy = any(i.state in ("unlearning", "waiting") for i in items)
    if any(i.state == "failed" for i in items) and not busy:
        move(request, "failed")
        request.reason = "; ".join(
            f"{i.model_version_id}: {i.history[-1].get('reason', 'failed')}"
            for i in items
            if i.state == "failed"
        )
        # The tainted versions stay blocked and nothing is purged: a person must decide.
        emit(session, request, SYSTEM, "failed", items=[i.id for i in items if i.state == "failed"])
    elif all(i.state == "done" for i in items):
        close(session, store, settings, request, items)
    return jobs


def _fell_back(item: DeletionItem) -> bool:
    """Whether the item already fell back since it was (re)started."""
    for entry in reversed(item.history):
        if entry.get("event") == "fallback":
            return True
        if entry.get("event") == "retried":
            return False
    return False


def retry(session: Session, request: DeletionRequest, actor: str) -> list[Job]:
    """Run a failed request's failed items again, with the method the model's policy
    names now (a person may have changed the policy, or fixed what made the job fail).

    The approval still stands: the scope and its blast radius are unchanged. Items that
    passed keep their verified results; the tainted versions stayed blocked meanwhile.
    """
    check_action(request, "retry")
    move(request, "unlearning")
    request.reason = None
    emit(session, request, actor, "retried")
    jobs = []
    for item in repository.items(session, request.id):
        if item.state != "failed":
            continue
        version = session.get(ModelVersion, item.model_version_id)
        assert version is not None
        if version.status not in ("tainted",):
            raise Conflict(
                f"version {version.id} is {version.status}; only a blocked version can be "
                "unlearned again"
            )
        item.method, item.exact, _ = _choose_method(session, request, version, descendant=False)
        item.state, item.verdict = "planned", None
        item.history = [
            *item.history,
            {"at": utcnow().isoformat(), "event": "retried", "by": actor, "method": item.method},
        ]
        if job := _start(session, request, item):
            jobs.append(job)
    return jobs


def _discard_candidate(
    session: Session, store: ObjectStore, request: DeletionRequest, item: DeletionItem, job: Job
) -> None:
    """A candidate that failed verification may still hold the data: it never becomes
    usable, and its checkpoint goes now (its numbers stay on the job and the verdict)."""
    candidate = session.get(ModelVersion, job.result_version_id) if job.result_version_id else None
    if candidate is None or candidate.status == "purged":
        return
    purge.purge_version(session, store, candidate)
    emit(session, request, SYSTEM, "candidate_purged", item=item.id, version=candidate.id)
    # A request filed meanwhile counted the candidate among its parent's descendants:
    # there is nothing left of it to unlearn.
    others = session.execute(
        select(DeletionItem, DeletionRequest)
        .join(DeletionRequest, DeletionRequest.id == DeletionItem.request_id)
        .where(
            DeletionItem.model_version_id == candidate.id,
            DeletionItem.state.in_(("planned", "waiting")),
            DeletionRequest.status.in_(OPEN_STATUSES),
        )
    ).all()
    for other_item, other in others:
        other_item.method, other_item.exact, other_item.state = "retire", True, "done"
        other_item.history = [
            *other_item.history,
            {"at": utcnow().isoformat(), "event": "version purged: a rejected candidate"},
        ]
        emit(session, other, SYSTEM, "item_dropped", item=other_item.id, version=candidate.id)


# What an attempt keeps of its run, besides its verdict.
ATTEMPT_KEYS = ("passed", "level", "evidence", "reason", "checks", "evaluation")


def _keep_attempt(item: DeletionItem, job: Job, verdict: dict[str, Any]) -> dict[str, Any]:
    """Record a run's verdict as one of the item's attempts (passed or not, with its
    figures, the original's, method, job and wall seconds) in its history, and make it
    the item's verdict, carrying every attempt so far: a failed attempt that the fallback
    replaced stays on the record and in the certificate."""
    attempt = {
        "at": utcnow().isoformat(),
        "event": "attempt",
        "attempt": item.attempt,
        "method": verdict.get("method", item.method),
        "exact": bool(verdict.get("exact", item.exact)),
        "job_id": job.id,
        "job_state": job.state,
        "wall_seconds": job.wall_seconds,
        **{k: verdict.get(k) for k in ATTEMPT_KEYS},
        "original_evaluation": verdict.get("original_evaluation"),
    }
    item.history = [*item.history, attempt]
    attempts = [
        {k: v for k, v in h.items() if k != "event"}
        for h in item.history
        if h.get("event") == "attempt"
    ]
    item.verdict = {**verdict, "attempts": attempts}
    return item.verdict


def _verdict(
    session: Session, request: DeletionRequest, item: DeletionItem, job: Job
) -> dict[str, Any]:
    metrics = job.metrics or {}
    if item.exact:
        return {
            "passed": True,
            "exact": True,
            "checks": [],
            "evaluation": metrics.get("evaluation"),
            "original_evaluation": metrics.get("original_evaluation"),
            "method": item.method,
            **exact_evidence(item.method),
        }
    evaluation, original = metrics.get("evaluation"), metrics.get("original_evaluation")
    if metrics.get("skipped"):
        # The run found the untouched version indistinguishable and did not run the method.
        return {
            "passed": False,
            "exact": False,
            "checks": [],
            "reason": str(metrics["skipped"]),
            "level": NOT_CERTIFIED,
            "evidence": "not certified (the original was not distinguishable to begin with)",
            "evaluation": None,
            "original_evaluation": original,
            "method": item.method,
        }
    if not evaluation or not original:
        return {
            "passed": False,
            "exact": False,
            "checks": [],
            "reason": "no evaluation",
            "level": NOT_CERTIFIED,
            "evidence": "not certified (the run produced no evaluation to verify)",
            "evaluation": evaluation,
            "original_evaluation": original,
            "method": item.method,
        }
    model = session.get(Model, job.model_id)
    assert model is not None
    result = verify(
        evaluation, original, request.scope_kind, policy_for(model).thresholds, model.family
    )
    return {
        **result,
        "exact": False,
        "evaluation": evaluation,
        "original_evaluation": original,
        "method": item.method,
    }


def close(
    session: Session,
    store: ObjectStore,
    settings: Settings,
    request: DeletionRequest,
    items: list[DeletionItem],
) -> None:
    """New versions replace the tainted ones; old checkpoints and raw bytes are purged."""
    from core.deletion.certificate import issue

    for item in items:
        old = session.get(ModelVersion, item.model_version_id)
        assert old is not None
        if item.result_version_id == old.id:  # nothing of the scope was left in it
            continue
        purge.purge_version(session, store, old)
        emit(
            session,
            request,
            SYSTEM,
            "version_purged",
            version=old.id,
            replaced_by=item.result_version_id,
        )
        if item.result_version_id:
            # Verified: usable from now on, unless another request holds it (it counted
            # it among its versions) or the version it replaces (then _retarget keeps
            # it blocked for that request).
            if item.result_version_id not in repository.held_elsewhere(session, request.id):
                version_status(
                    session,
                    SYSTEM,
                    [item.result_version_id],
                    "active",
                    deletion_request_id=request.id,
                )
                session.execute(
                    update(ModelVersion)
                    .where(ModelVersion.id == item.result_version_id)
                    .values(status="active")
                )
            _retarget(session, old.id, item.result_version_id, request.id)
    release(session, request)
    if request.scope_kind in ("subject_ids", "sample_ids"):
        salt = subject_salt(settings)
        for dataset_id, new_version in purge.delete_samples(
            session,
            store,
            request.scope_kind,
            request.scope[request.scope_kind],
            request.id,
            commit=lambda value: commit_subject(value, salt),
        ).items():
            emit(
                session,
                request,
                SYSTEM,
                "samples_deleted",
                dataset=dataset_id,
                new_version=new_version,
            )
            # Judges the worker trained on this dataset's images learnt from the deleted
            # samples too: they go with them (retrained on demand from what remains).
            purge.after_commit(
                session, lambda folder=f"judges/{dataset_id}/": store.delete_prefix(folder)
            )
    move(request, "completed")
    request.completed_at = utcnow()
    emit(session, request, SYSTEM, "completed", outcome=erased_outcome(request))
    issue(session, request, settings)
    redact_request(session, settings, request)  # closed: ids only as commitments now


def erased_outcome(request: DeletionRequest) -> str:
    """``erased``, or ``erased_where_known`` when versions of unknown lineage (uploaded
    checkpoints) exist: nobody can tell whether they were trained on the data, and they
    were not changed, so the request is not simply "erased"."""
    unknown = (request.blast_radius or {}).get("unverifiable_versions")
    return "erased_where_known" if unknown else "erased"


def _retarget(session: Session, old_id: str, new_id: str, closing_id: str) -> None:
    """Other open requests waiting on a version this request replaced continue from its
    replacement, which stays blocked (tainted) for them: it may still hold their data."""
    rows = session.execute(
        select(DeletionItem, DeletionRequest)
        .join(DeletionRequest, DeletionRequest.id == DeletionItem.request_id)
        .where(
            DeletionItem.model_version_id == old_id,
            DeletionItem.request_id != closing_id,
            DeletionItem.state.in_(("planned", "waiting")),
            DeletionRequest.status.in_(OPEN_STATUSES),
        )
    ).all()
    if not rows:
        return
    version_status(session, SYSTEM, [new_id], "tainted", deletion_request_id=closing_id)
    session.execute(update(ModelVersion).where(ModelVersion.id == new_id).values(status="tainted"))
    for item, other in rows:
        item.model_version_id = new_id
        item.history = [
            *item.history,
            {"at": utcnow().isoformat(), "event": "retargeted", "from": old_id, "to": new_id},
        ]
        if session.scalar(
            select(DeletionItem.id).where(
                DeletionItem.request_id == other.id,
                DeletionItem.model_version_id == new_id,
                DeletionItem.id != item.id,
            )
        ):
            # The request already covers the replacement itself (it was filed after the
            # replacement existed): one run there is enough.
            item.method, item.exact, item.state, item.result_version_id = (
                "none",
                True,
                "done",
                new_id,
            )
        entries = [p for p in other.plan if p.get("model_version_id") == old_id]
        other.plan = [
            *other.plan,
            *({**p, "model_version_id": new_id, "replaces": old_id} for p in entries),
        ]
        emit(session, other, SYSTEM, "retargeted", item=item.id, version=new_id, replaces=old_id)


def release(session: Session, request: DeletionRequest) -> None:
    """Untaint the request's versions that no other request holds."""
    held = repository.held_elsewhere(session, request.id)
    free = [p["model_version_id"] for p in request.plan if p["model_version_id"] not in held]
    version_status(
        session, SYSTEM, free, "active", only_from="tainted", deletion_request_id=request.id
    )
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.id.in_(free), ModelVersion.status == "tainted")
        .values(status="active")
    )


def overdue(request: DeletionRequest, now: datetime | None = None) -> bool:
    return request.status in OPEN_STATUSES and (now or utcnow()) > request.due_at


def due_soon(request: DeletionRequest, now: datetime | None = None, days: int = 7) -> bool:
    now = now or utcnow()
    return request.status in OPEN_STATUSES and now <= request.due_at <= now + timedelta(days=days)
