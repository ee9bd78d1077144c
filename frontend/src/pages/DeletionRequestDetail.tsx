import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type ReactNode } from "react";
import { Link, useParams } from "react-router";

import { api, saveBlob, unwrap } from "../api/client";
import { invalidateRequest, LEGAL_BASIS_TEXT, OPEN_STATUSES, useDeletionRequest, useTimeline } from "../api/deletion";
import { toApiError } from "../api/errors";
import { isActive, useAllDatasets, useAllModels, useJob } from "../api/queries";
import type { DeletionItem, DeletionRequest, Job, PlanItem, PlanShadows, TimelineEntry, UnknownLineage } from "../api/types";
import { useAuth, useCan } from "../auth";
import { Mono, Progress, ShortId, StateBadge } from "../components/Badges";
import { Countdown } from "../components/Countdown";
import { asVerdict, EvidenceBadge, ItemEvidence } from "../components/Evidence";
import { Facts, formatValue } from "../components/KeyValue";
import { Empty, ErrorMessage, Loading, QueryView } from "../components/States";
import { duration, Time } from "../components/Time";
import { useJobLive } from "../live/useJobLive";
import { ForgetAnswers } from "./DeletionRequestAnswers";
import { verifyCertificate, type Check } from "../verify/certificate";

type Action = "approve" | "reject" | "cancel" | "extend" | "advance" | "retry";

/** What the signed-in key may do to this request now, and why not otherwise. The actions
 * are the server's `allowed_actions` (computed from the request's states table and the
 * key's role, so the buttons never drift from what the API accepts); the notes only
 * explain what is missing. */
export function allowedActions(request: Pick<DeletionRequest, "status" | "extended" | "allowed_actions">, role: string | undefined): { actions: Action[]; notes: string[] } {
  const actions = (request.allowed_actions ?? []).filter((a): a is Action => a in LABELS);
  const notes: string[] = [];
  const open = OPEN_STATUSES.includes(request.status);
  if (role !== "admin" && role !== "compliance") {
    if (open) notes.push("Deciding on deletion requests needs the compliance or admin role.");
    return { actions, notes };
  }
  if (request.status === "awaiting_approval" && !actions.includes("approve")) notes.push("You filed this request, so you cannot approve it: a second person (compliance or admin) must.");
  if (open && request.extended) notes.push("The deadline was already extended once; the law allows one extension.");
  if (actions.includes("retry")) notes.push("Unlearning failed verification and its fallback; the affected versions stay blocked. Change the model's deletion policy or fix the failed job, then retry.");
  return { actions, notes };
}

const LABELS: Record<Action, string> = { approve: "Approve", reject: "Reject…", cancel: "Cancel request", extend: "Extend deadline…", advance: "Re-check jobs now", retry: "Retry failed versions" };

function Actions({ request }: { request: DeletionRequest }): ReactNode {
  const { role } = useAuth();
  const queryClient = useQueryClient();
  const [asking, setAsking] = useState<"reject" | "extend" | null>(null);
  const [reason, setReason] = useState("");
  const id = useId();
  const { actions, notes } = allowedActions(request, role);
  const run = useMutation({
    mutationFn: async ({ action, why }: { action: Action; why?: string }) => {
      const path = { params: { path: { request_id: request.id } } };
      switch (action) {
        case "approve":
          return unwrap(api.POST("/api/v1/deletion-requests/{request_id}/approve", path));
        case "cancel":
          return unwrap(api.POST("/api/v1/deletion-requests/{request_id}/cancel", path));
        case "advance":
          return unwrap(api.POST("/api/v1/deletion-requests/{request_id}/advance", path));
        case "retry":
          return unwrap(api.POST("/api/v1/deletion-requests/{request_id}/retry", path));
        case "reject":
          return unwrap(api.POST("/api/v1/deletion-requests/{request_id}/reject", { ...path, body: { reason: why ?? "" } }));
        case "extend":
          return unwrap(api.POST("/api/v1/deletion-requests/{request_id}/extend", { ...path, body: { reason: why ?? "" } }));
      }
    },
    onSuccess: (updated) => {
      queryClient.setQueryData(["deletion-request", request.id], updated);
      invalidateRequest(queryClient, request.id, false);
      setAsking(null);
      setReason("");
    },
  });
  if (!actions.length && !notes.length) return null;
  return (
    <div className="request-actions" role="group" aria-label="Decisions">
      <div className="actions">
        {actions.map((a) => (
          <button
            key={a}
            type="button"
            className={a === "approve" ? "primary" : a === "reject" || a === "cancel" ? "danger" : undefined}
            disabled={run.isPending}
            aria-expanded={a === "reject" || a === "extend" ? asking === a : undefined}
            onClick={() => {
              if (a === "reject" || a === "extend") setAsking(asking === a ? null : a);
              else if (a !== "cancel" || window.confirm("Cancel this request? The versions it tainted are released.")) run.mutate({ action: a });
            }}
          >
            {LABELS[a]}
          </button>
        ))}
      </div>
      {notes.map((n) => (
        <p key={n} className="notice" data-testid="action-note">
          {n}
        </p>
      ))}
      {asking && (
        <form
          className="card reason"
          aria-label={asking === "reject" ? "Reject the request" : "Extend the deadline"}
          onSubmit={(e) => {
            e.preventDefault();
            if (reason.trim()) run.mutate({ action: asking, why: reason.trim() });
          }}
        >
          <label htmlFor={`${id}-reason`}>{asking === "reject" ? "Reason for rejecting (kept in the audit log)" : "Reason for the extension (told to the data subject)"}</label>
          <textarea id={`${id}-reason`} rows={3} maxLength={2000} value={reason} onChange={(e) => setReason(e.target.value)} autoFocus />
          <div className="actions">
            <button type="submit" className={asking === "reject" ? "danger" : "primary"} disabled={!reason.trim() || run.isPending}>
              {asking === "reject" ? "Reject request" : "Extend deadline"}
            </button>
            <button type="button" onClick={() => setAsking(null)}>
              Back
            </button>
          </div>
        </form>
      )}
      {run.error && <ErrorMessage error={run.error} title="The API refused" />}
    </div>
  );
}

function VersionList({ ids }: { ids: unknown }): ReactNode {
  const list = Array.isArray(ids) ? (ids as string[]) : [];
  if (!list.length) return <span className="muted">none</span>;
  return (
    <ul className="plain">
      {list.map((v) => (
        <li key={v}>
          <Link to={`/versions/${v}`}>
            <ShortId id={v} />
          </Link>
        </li>
      ))}
    </ul>
  );
}

function BlastRadius({ request }: { request: DeletionRequest }): ReactNode {
  const datasets = useAllDatasets();
  const names = new Map((datasets.data ?? []).map((d) => [d.id, d.name]));
  const br = request.blast_radius as { datasets?: Record<string, number>; samples?: number; versions?: string[]; descendants?: string[]; unverifiable_versions?: string[]; unverifiable_note?: string };
  if (!Object.keys(br).length) return <Empty>Not scoped yet.</Empty>;
  return (
    <Facts
      items={[
        ["Samples", String(br.samples ?? 0)],
        [
          "Datasets",
          Object.keys(br.datasets ?? {}).length ? (
            <ul className="plain">
              {Object.entries(br.datasets ?? {}).map(([id, n]) => (
                <li key={id}>
                  <Link to={`/datasets/${id}`}>{names.get(id) ?? id}</Link>: {n} samples
                </li>
              ))}
            </ul>
          ) : (
            <span className="muted">none</span>
          ),
        ],
        ["Versions trained on them", <VersionList ids={br.versions} />],
        ["Fine-tuned from those", <VersionList ids={br.descendants} />],
        [
          "Lineage unknown (uploaded)",
          <div data-testid="unknown-lineage">
            <VersionList ids={br.unverifiable_versions} />
            {br.unverifiable_versions?.length && br.unverifiable_note ? <p className="muted small">{br.unverifiable_note}</p> : null}
          </div>,
        ],
      ]}
    />
  );
}

/** The strong test's shadow models for one plan item: a one-off cost, or a bank reused. */
function ShadowsText({ shadows }: { shadows: PlanShadows | null | undefined }): ReactNode {
  if (!shadows) return <span className="muted">—</span>;
  if (shadows.exists)
    return (
      <div data-testid="plan-shadows">
        reuses {shadows.k} shadow models{" "}
        {shadows.from_version_id && (
          <>
            of{" "}
            <Link to={`/versions/${shadows.from_version_id}`}>
              <ShortId id={shadows.from_version_id} />
            </Link>
          </>
        )}
        <div className="muted small">
          no one-off cost (paid {duration(shadows.paid_seconds)} once; {shadows.runs_served} run(s) served)
        </div>
      </div>
    );
  return (
    <div data-testid="plan-shadows">
      trains {shadows.k} shadow models once: {duration(shadows.one_off_seconds)}
      <div className="muted small">one-off (≈ k/2 trainings), reused by every later request on this version and those unlearned from it</div>
    </div>
  );
}

function CostText({ p }: { p: PlanItem }): ReactNode {
  const c = p.cost;
  return (
    <>
      {p.method === "retire" ? "none" : duration(p.estimated_seconds)} <span className="muted small">vs retrain {duration(p.retrain_seconds)}</span>
      {c && (
        <div className="muted small" data-testid="plan-cost">
          {c.method} {c.estimate_fraction.toFixed(2)}× a retrain
          {c.estimated_passes !== undefined && c.retrain_passes !== undefined ? ` (${formatValue(c.estimated_passes)} of ${formatValue(c.retrain_passes)} sample passes)` : ""}, p_fail {c.p_fail.toFixed(2)} ({c.failures} of {c.verdicts} past verdicts on this {c.history}); expected {c.expected_fraction.toFixed(2)}× a retrain with failures priced in
          {c.max_cost_fraction !== null ? `; limit ${formatValue(c.max_cost_fraction)}× (max_cost_fraction)` : "; no cost limit"}: {c.choice === "attempt" ? "attempt" : "exact path"}
        </div>
      )}
    </>
  );
}

function Decision({ p }: { p: PlanItem }): ReactNode {
  const c = p.cost;
  return (
    <div data-testid="plan-decision">
      {c ? <span className={`badge decision-${c.choice}`}>{c.choice === "attempt" ? "attempt" : "exact path"}</span> : <span className="badge">{p.exact ? "exact" : "approximate"}</span>}
      {p.note && <div className="muted small">{p.note}</div>}
      {c && c.reason !== p.note && <div className="muted small">{c.reason}</div>}
      {!c && !p.note && <div className="muted small">{p.exact ? "the method is exact: no verification needed" : "not priced: the policy's method, verified after the run"}</div>}
      {p.lineage && (
        <div className="muted small" data-testid="plan-lineage">
          Base: {p.lineage.base_statement}
          {p.lineage.fine_tune.samples !== null ? `; fine-tuned on ${p.lineage.fine_tune.samples} sample(s)` : ""}
        </div>
      )}
    </div>
  );
}

function Plan({ plan }: { plan: PlanItem[] }): ReactNode {
  const models = useAllModels();
  const names = new Map((models.data ?? []).map((m) => [m.id, m.name]));
  if (!plan.length) return <Empty>No plan: nothing to unlearn.</Empty>;
  const shadows = plan.reduce((s, p) => s + (p.shadows?.one_off_seconds ?? 0), 0);
  const total = plan.reduce((s, p) => s + (p.estimated_seconds ?? 0), 0) + shadows;
  const unknown = plan.some((p) => p.method !== "retire" && (p.estimated_seconds === null || p.estimated_seconds === undefined));
  return (
    <>
      <table className="table">
        <caption className="sr-only">Plan</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Model</th>
            <th scope="col">Method</th>
            <th scope="col">Fallback</th>
            <th scope="col">Estimate vs retrain</th>
            <th scope="col">Decision and why</th>
            <th scope="col">Shadow models</th>
          </tr>
        </thead>
        <tbody>
          {plan.map((p) => (
            <tr key={p.model_version_id}>
              <td>
                <Link to={`/versions/${p.model_version_id}`}>
                  <ShortId id={p.model_version_id} />
                </Link>
              </td>
              <td>{p.model_id ? <Link to={`/models/${p.model_id}`}>{names.get(p.model_id) ?? <ShortId id={p.model_id} />}</Link> : "—"}</td>
              <td>
                {p.method} <span className="muted small">({p.exact ? "exact" : "approximate, verified"})</span>
              </td>
              <td>{p.fallback ?? "—"}</td>
              <td>
                <CostText p={p} />
              </td>
              <td>
                <Decision p={p} />
              </td>
              <td>
                <ShadowsText shadows={p.shadows} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="muted small" data-testid="plan-total">
        Estimated total: {duration(total)} of worker time{shadows ? `, of which ${duration(shadows)} one-off shadow training` : ""}
        {unknown ? " (some versions have no training time to estimate from)" : ""}.
      </p>
    </>
  );
}

function LiveJob({ jobId, job }: { jobId: string; job: Job }): ReactNode {
  const live = useJobLive(jobId, job);
  return (
    <>
      <Progress value={job.progress} label={`Progress of job ${jobId}`} />
      {live.status === "open" && <span className="live live-open">live</span>}
    </>
  );
}

function ItemJob({ jobId }: { jobId: string }): ReactNode {
  const job = useJob(jobId);
  if (job.isPending) return <Loading what="Loading the job" />;
  if (job.error || !job.data) return <ErrorMessage error={job.error} title="Could not load the job" />;
  const j = job.data;
  return (
    <span className="item-job">
      <Link to={`/jobs/${jobId}`} aria-label={`Job ${jobId}`}>
        <ShortId id={jobId} />
      </Link>{" "}
      <StateBadge state={j.state} /> {isActive(j) ? <LiveJob jobId={jobId} job={j} /> : <span className="muted small">{duration(j.wall_seconds)}</span>}
    </span>
  );
}

/** What a certificate states of one item, for items that never had a run (retired). */
type Certified = { old_version_id: string; evidence_level?: string; evidence?: string };

function Verification({ item, certified }: { item: DeletionItem; certified?: Certified }): ReactNode {
  const verdict = asVerdict(item.verdict);
  if (!verdict) {
    if (certified?.evidence_level) return <EvidenceBadge level={certified.evidence_level} />;
    return <span className="muted">—</span>;
  }
  return (
    <>
      <EvidenceBadge level={verdict.level} /> {verdict.passed ? <span className="ok-text">passed</span> : <span className="bad-text">{verdict.reason ?? "failed"}</span>}
    </>
  );
}

function Items({ items, certified }: { items: DeletionItem[]; certified: Map<string, Certified> }): ReactNode {
  if (!items.length) return <Empty>No version needs unlearning.</Empty>;
  return (
    <>
      <table className="table" data-testid="items">
        <caption className="sr-only">Progress per version</caption>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">State</th>
            <th scope="col">Method</th>
            <th scope="col">Job</th>
            <th scope="col">Verification</th>
            <th scope="col">New version</th>
          </tr>
        </thead>
        <tbody>
          {items.map((i) => (
            <tr key={i.id}>
              <td>
                <Link to={`/versions/${i.model_version_id}`}>
                  <ShortId id={i.model_version_id} />
                </Link>
              </td>
              <td>
                <StateBadge state={i.state} />
              </td>
              <td>
                {i.method}
                {i.attempt > 1 && <span className="muted small"> (attempt {i.attempt})</span>}
              </td>
              <td>{i.job_id ? <ItemJob jobId={i.job_id} /> : <span className="muted">—</span>}</td>
              <td>
                <Verification item={i} certified={certified.get(i.model_version_id)} />
              </td>
              <td>
                {i.result_version_id ? (
                  <Link to={`/versions/${i.result_version_id}`}>
                    <ShortId id={i.result_version_id} />
                  </Link>
                ) : (
                  <span className="muted">—</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {items.map((i) => {
        const verdict = asVerdict(i.verdict);
        const cert = certified.get(i.model_version_id);
        if (verdict) return <ItemEvidence key={i.id} verdict={verdict} versionId={i.model_version_id} />;
        if (!cert?.evidence_level) return null;
        return <ItemEvidence key={i.id} verdict={{ passed: true, exact: true, level: cert.evidence_level, evidence: cert.evidence, checks: [] }} versionId={i.model_version_id} />;
      })}
    </>
  );
}

function payloadText(payload: Record<string, unknown> | null): string {
  if (!payload) return "";
  return Object.entries(payload)
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(" · ");
}

export function TimelineList({ entries }: { entries: TimelineEntry[] }): ReactNode {
  if (!entries.length) return <Empty>No steps recorded.</Empty>;
  return (
    <ol className="timeline" data-testid="timeline">
      {entries.map((e) => (
        <li key={e.seq}>
          <strong>{e.action.replace(/^deletion_request\./, "").replace(/_/g, " ")}</strong> <Time value={e.at} /> <span className="muted small">by {e.actor} · audit #{e.seq}</span>
          {payloadText(e.payload) && <div className="muted small">{payloadText(e.payload)}</div>}
        </li>
      ))}
    </ol>
  );
}

type Fetched = { text: string; sha256: string | null; seq: number | null };

async function fetchCertificate(requestId: string, format: "json" | "html"): Promise<Fetched> {
  const { data, error, response } = await api.GET("/api/v1/deletion-requests/{request_id}/certificate", {
    params: { path: { request_id: requestId }, query: { format } },
    parseAs: "text",
  });
  if (!response.ok || typeof data !== "string") {
    let body: unknown = error;
    try {
      body = typeof error === "string" ? JSON.parse(error) : error;
    } catch {
      /* keep the text */
    }
    throw toApiError(body, response);
  }
  const seq = response.headers.get("X-Audit-Seq");
  return { text: data, sha256: response.headers.get("X-Certificate-SHA256"), seq: seq === null ? null : Number(seq) };
}

export function Checks({ checks }: { checks: Check[] }): ReactNode {
  const done = checks.filter((c) => !c.skipped);
  const ok = done.length > 0 && done.every((c) => c.ok);
  const partial = ok && done.length < checks.length;
  return (
    <div className={`verify-result ${ok ? "ok" : "bad"}`} role="status" data-testid="verify-result">
      <p>
        <strong>{!ok ? "✗ Not verified" : partial ? "✓ Signature verified (audit log not checked)" : "✓ Verified"}</strong>{" "}
        <span className="muted small">(checked in this browser with the deployment's public key)</span>
      </p>
      <ul className="plain">
        {checks.map((c) => (
          <li key={c.name} className={c.skipped ? "muted" : c.ok ? "ok-text" : "bad-text"}>
            <span aria-hidden="true">{c.skipped ? "–" : c.ok ? "✓" : "✗"}</span> <strong>{c.name}</strong>: {c.detail}
          </li>
        ))}
      </ul>
    </div>
  );
}

function Certificate({ request }: { request: DeletionRequest }): ReactNode {
  const [view, setView] = useState<"html" | "json" | null>(null);
  const canAudit = useCan("audit");
  const json = useQuery({ queryKey: ["certificate", request.id, "json"], queryFn: () => fetchCertificate(request.id, "json"), staleTime: Infinity });
  const html = useQuery({ queryKey: ["certificate", request.id, "html"], queryFn: () => fetchCertificate(request.id, "html"), enabled: view === "html", staleTime: Infinity });
  const pdf = useMutation({
    mutationFn: async () => {
      const { data, error, response } = await api.GET("/api/v1/deletion-requests/{request_id}/certificate", {
        params: { path: { request_id: request.id }, query: { format: "pdf" } },
        parseAs: "blob",
      });
      if (!response.ok || !(data instanceof Blob)) throw toApiError(error, response);
      saveBlob(data, `certificate-${request.id}.pdf`);
    },
  });
  const verify = useMutation({
    mutationFn: async () => {
      const cert = json.data ?? (await fetchCertificate(request.id, "json"));
      const pem = await unwrap(api.GET("/api/v1/audit/public-key", { parseAs: "text" }));
      return verifyCertificate(request.id, { text: cert.text, sha256Header: cert.sha256, auditSeq: cert.seq }, String(pem), canAudit);
    },
  });
  return (
    <>
      <div className="actions">
        <button type="button" aria-pressed={view === "html"} onClick={() => setView(view === "html" ? null : "html")}>
          View certificate
        </button>
        <button type="button" aria-pressed={view === "json"} onClick={() => setView(view === "json" ? null : "json")}>
          View JSON
        </button>
        <button type="button" disabled={!json.data} onClick={() => json.data && saveBlob(new Blob([json.data.text], { type: "application/json" }), `certificate-${request.id}.json`)}>
          Download JSON
        </button>
        <button type="button" disabled={pdf.isPending} onClick={() => pdf.mutate()}>
          {pdf.isPending ? "Preparing PDF…" : "Download PDF"}
        </button>
        <button type="button" className="primary" disabled={verify.isPending} onClick={() => verify.mutate()}>
          {verify.isPending ? "Verifying…" : "Verify certificate"}
        </button>
      </div>
      {json.error && <ErrorMessage error={json.error} title="Could not load the certificate" retry={() => void json.refetch()} />}
      {json.data && (
        <p className="muted small">
          sha256 <Mono>{json.data.sha256 ?? "?"}</Mono> · anchored at audit position {json.data.seq ?? "?"}
        </p>
      )}
      {pdf.error && <ErrorMessage error={pdf.error} title="Could not download the PDF" />}
      {verify.error && <ErrorMessage error={verify.error} title="Could not verify" />}
      {verify.data && <Checks checks={verify.data} />}
      {view === "html" && (
        <QueryView query={html} what="the certificate">
          {(c) => (
            // No scripts run in it; same origin only so its height can be fitted to the content.
            <iframe
              className="certificate"
              title="Deletion certificate"
              sandbox="allow-same-origin"
              srcDoc={c.text}
              onLoad={(e) => {
                const doc = e.currentTarget.contentDocument;
                if (doc?.documentElement) e.currentTarget.style.height = `${doc.documentElement.scrollHeight + 24}px`;
              }}
            />
          )}
        </QueryView>
      )}
      {view === "json" && (
        <QueryView query={json} what="the certificate">
          {(c) => (
            <pre className="log certificate-json" tabIndex={0} aria-label="Certificate JSON">
              {JSON.stringify(JSON.parse(c.text), null, 2)}
            </pre>
          )}
        </QueryView>
      )}
    </>
  );
}

/** What each outcome means, for the person reading the page (core/deletion/render.py). */
const OUTCOME_TEXT: Record<string, string> = {
  erased: "every version trained on the data was unlearned, retrained or retired, and the samples were removed from their datasets.",
  erased_where_known:
    "erased wherever the lineage is known. The versions of unknown lineage below (uploaded checkpoints with no recorded training samples) were not changed: nobody can tell whether they were trained on the data, so the request cannot say the data is gone from them.",
  nothing_to_delete: "no dataset sample and no model version held the data.",
};

/** The signed certificate's document (its models and unknown-lineage versions). */
type CertificateDoc = { outcome?: string; models?: { old_version_id: string; evidence_level?: string; evidence?: string }[]; unknown_lineage?: UnknownLineage[] };

function useCertificateDoc(request: DeletionRequest): CertificateDoc | null {
  // Shares its cache with the certificate panel (same key): fetched once.
  const json = useQuery({ queryKey: ["certificate", request.id, "json"], queryFn: () => fetchCertificate(request.id, "json"), staleTime: Infinity, enabled: request.has_certificate });
  if (!json.data) return null;
  try {
    return JSON.parse(json.data.text) as CertificateDoc;
  } catch {
    return null;
  }
}

/** The outcome as the API states it: on the request, else in the completion event or the certificate. */
export function outcomeOf(request: DeletionRequest, timeline: TimelineEntry[] | undefined, certificate: CertificateDoc | null): string | null {
  const own = (request as { outcome?: unknown }).outcome;
  if (typeof own === "string") return own;
  const done = [...(timeline ?? [])].reverse().find((e) => e.action === "deletion_request.completed");
  if (typeof done?.payload?.outcome === "string") return done.payload.outcome;
  return certificate?.outcome ?? null;
}

function Outcome({ outcome, request, certificate }: { outcome: string; request: DeletionRequest; certificate: CertificateDoc | null }): ReactNode {
  const br = request.blast_radius as { unverifiable_versions?: string[]; unverifiable_note?: string };
  const named: UnknownLineage[] = certificate?.unknown_lineage ?? (br.unverifiable_versions ?? []).map((v) => ({ version_id: v, model_id: null, sha256: null, status: null, note: br.unverifiable_note ?? "" }));
  return (
    <div className={outcome === "erased" ? "notice ok" : "notice"} data-testid="outcome">
      <p>
        <strong>Outcome: {outcome.replace(/_/g, " ")}</strong> <code className="muted small">({outcome})</code>
        {OUTCOME_TEXT[outcome] ? `: ${OUTCOME_TEXT[outcome]}` : ""}
      </p>
      {named.length > 0 && (
        <ul className="plain" aria-label="Versions of unknown lineage">
          {named.map((u) => (
            <li key={u.version_id}>
              <Link to={`/versions/${u.version_id}`}>
                <ShortId id={u.version_id} />
              </Link>
              {u.model_id && (
                <>
                  {" "}
                  of <Link to={`/models/${u.model_id}`}>{u.model_id}</Link>
                </>
              )}
              {u.status && <> <StateBadge state={u.status} /></>}
              {u.sha256 && (
                <>
                  {" "}
                  <span className="muted small">sha256</span> <ShortId id={u.sha256} />
                </>
              )}
              {u.note && <div className="muted small">{u.note}</div>}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function scopeText(r: DeletionRequest): ReactNode {
  const values = r.scope[r.scope_kind];
  if (r.scope.redacted === true || !Array.isArray(values)) {
    // Closed: the ids were replaced by the commitments the certificate states.
    const shown = r.scope_commitments.slice(0, 3).map((c) => `${c.slice(0, 12)}…`).join(", ");
    return (
      <span className="muted" data-testid="scope-redacted" title={r.scope_commitments.join("\n")}>
        {r.scope_kind.replace("_ids", "")}: {r.scope_commitments.length} salted commitment(s) ({shown}); ids no longer kept in clear
      </span>
    );
  }
  const shown = values.slice(0, 20).map(String).join(", ");
  return (
    <>
      {r.scope_kind === "labels" ? `class ${shown} of ` : `${r.scope_kind.replace("_ids", "")}: ${shown}`}
      {r.scope_kind === "labels" && typeof r.scope.model_id === "string" ? <Link to={`/models/${r.scope.model_id}`}>{r.scope.model_id}</Link> : null}
      {values.length > 20 ? ` … (${values.length})` : ""}
    </>
  );
}

function RequestBody({ request }: { request: DeletionRequest }): ReactNode {
  const timeline = useTimeline(request.id, request.status);
  const certificate = useCertificateDoc(request);
  const outcome = outcomeOf(request, timeline.data, certificate);
  const certified = new Map((certificate?.models ?? []).map((m) => [m.old_version_id, m]));
  return (
    <>
      <div className="page-head">
        <h1>
          Deletion request <ShortId id={request.id} />
        </h1>
        <span aria-live="polite" data-testid="request-status">
          <StateBadge state={request.status} />
        </span>
        <Countdown dueAt={request.due_at} status={request.status} />
      </div>
      <Actions request={request} />
      {request.reason && (
        <div className={request.status === "failed" ? "error" : "notice"} role={request.status === "failed" ? "alert" : undefined}>
          <strong>{request.status === "failed" ? "Failed" : "Reason"}</strong>
          <p>{request.reason}</p>
        </div>
      )}
      {outcome && <Outcome outcome={outcome} request={request} certificate={certificate} />}
      <div className="grid-2">
        <section aria-labelledby="dr-facts-h">
          <h2 id="dr-facts-h">Details</h2>
          <Facts
            items={[
              ["Scope", scopeText(request)],
              ["Legal basis", LEGAL_BASIS_TEXT[request.legal_basis] ?? request.legal_basis],
              ["Requester reference", request.requester_reference || null],
              ["Received", <Time value={request.received_at} />],
              ["Due", <Time value={request.due_at} />],
              ["Extended", request.extended ? `yes: ${request.extension_reason ?? ""}` : "no"],
              ["Filed by", request.created_by],
              ["Approved by", request.approved_by ? <>{request.approved_by} · <Time value={request.approved_at} /></> : null],
              ["Completed", <Time value={request.completed_at} />],
            ]}
          />
        </section>
        <section aria-labelledby="dr-timeline-h">
          <h2 id="dr-timeline-h">Timeline</h2>
          <QueryView query={timeline} what="the timeline">
            {(entries) => <TimelineList entries={entries} />}
          </QueryView>
        </section>
      </div>
      <section aria-labelledby="dr-radius-h">
        <h2 id="dr-radius-h">Blast radius</h2>
        <BlastRadius request={request} />
      </section>
      <section aria-labelledby="dr-plan-h">
        <h2 id="dr-plan-h">Plan</h2>
        <Plan plan={request.plan as PlanItem[]} />
      </section>
      <section aria-labelledby="dr-progress-h">
        <h2 id="dr-progress-h">Progress per version</h2>
        <Items items={request.items ?? []} certified={certified} />
      </section>
      <ForgetAnswers items={request.items ?? []} />
      <section aria-labelledby="dr-cert-h">
        <h2 id="dr-cert-h">Certificate</h2>
        {request.has_certificate ? <Certificate request={request} /> : <Empty>The signed certificate is issued when the request completes.</Empty>}
      </section>
    </>
  );
}

export function DeletionRequestDetail(): ReactNode {
  const { requestId = "" } = useParams();
  const request = useDeletionRequest(requestId);
  return (
    <section>
      <p className="crumbs">
        <Link to="/deletion-requests">Deletion requests</Link> /
      </p>
      <QueryView query={request} what="the deletion request">
        {(r) => <RequestBody key={r.id} request={r} />}
      </QueryView>
    </section>
  );
}
