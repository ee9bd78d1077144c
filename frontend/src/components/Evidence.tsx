/**
 * What a deletion verdict proves, drawn from the verdict itself (core/deletion/policy.py,
 * docs/deletion.md "What a verdict proves"): its level of evidence and sentence, every
 * check on the candidate beside the same check on the original, and every attempt.
 * Nothing here knows a model family: columns appear when the records carry their fields
 * (a diffusion check's judge and sampler setting, an interval, the labels of a class).
 */
import type { ReactNode } from "react";
import { Link } from "react-router";

import type { Attempt, CheckRecord, Verdict } from "../api/types";
import { ShortId } from "./Badges";
import { JudgeCells, judgeCells } from "./JudgeCells";
import { formatValue } from "./KeyValue";
import { duration } from "./Time";

/** A verdict as the API stores it (a free-form object), or null when it is not one. */
export function asVerdict(value: unknown): Verdict | null {
  if (!value || typeof value !== "object" || typeof (value as { passed?: unknown }).passed !== "boolean") return null;
  return value as Verdict;
}

export const levelText = (level: string) => level.replace(/_/g, " ");

/** What each level means (docs/deletion.md, "Levels of evidence"), shown on hover. */
const LEVEL_MEANING: Record<string, string> = {
  exact: "The method gives what training without the data gives (retrain, SISA, retired, never trained on it): no statistical check is needed.",
  verified_against_reference: "The per-sample membership test against shadow reference models flagged the original and no longer flags the candidate.",
  not_distinguishable: "Approximate unlearning: the candidate passes forgetting checks the original failed; the data's influence is not provably gone.",
  not_certified: "This run's evidence does not support the deletion: a check failed, or no check was informative.",
};

export function EvidenceBadge({ level }: { level: string | null | undefined }): ReactNode {
  if (!level) return <span className="badge">level not recorded</span>;
  return (
    <span className={`badge evidence-${level}`} data-testid="evidence-level" title={LEVEL_MEANING[level]}>
      {levelText(level)}
    </span>
  );
}

const num = (v: number | null | undefined) => (typeof v === "number" ? v.toFixed(4) : "—");

function Passed({ value, none = "not measured" }: { value: boolean | null | undefined; none?: string }): ReactNode {
  if (value === null || value === undefined) return <span className="muted">{none}</span>;
  return value ? <span className="ok-text">✓ passed</span> : <span className="bad-text">✗ failed</span>;
}

/** Why a check counts (or not) towards the verdict's evidence. */
function informativeText(c: CheckRecord): ReactNode {
  if (c.informative) return <strong className="ok-text">yes</strong>;
  if (c.kind === "utility") return <span className="muted">utility check</span>;
  if (c.original_passed === true) return <span className="muted">no: the original passed it too</span>;
  return <span className="muted">no: the original was not measured</span>;
}

/** Fields of a check record that say where it applies (judge, sampler setting, labels). */
const WHERE = ["judge", "sampler", "labels"] as const;

function whereText(c: CheckRecord): string {
  return WHERE.filter((k) => c[k] !== undefined && c[k] !== null)
    .map((k) => `${k === "sampler" ? "sampler setting" : k} ${Array.isArray(c[k]) ? (c[k] as string[]).join(", ") : String(c[k])}`)
    .join(" · ");
}

/** The checks of one verdict or attempt: candidate and original side by side. */
export function ChecksTable({ checks, caption, empty = "No check recorded." }: { checks: CheckRecord[]; caption: string; empty?: string }): ReactNode {
  if (!checks.length) return <p className="muted small">{empty}</p>;
  const where = checks.some((c) => whereText(c));
  return (
    <table className="table compact-rows" data-testid="checks">
      <caption className="sr-only">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Check</th>
          {where && <th scope="col">Where</th>}
          <th scope="col">Candidate</th>
          <th scope="col">Threshold</th>
          <th scope="col">Passed</th>
          <th scope="col">Original</th>
          <th scope="col">Original passed</th>
          <th scope="col">Informative</th>
        </tr>
      </thead>
      <tbody>
        {checks.map((c, n) => (
          <tr key={`${c.check}-${n}`} data-testid="check-row">
            <td>
              <code>{c.check}</code>
              {c.attack && <div className="muted small">{c.attack}</div>}
              {(c.kind || c.reference) && (
                <div className="muted small">
                  {c.kind}
                  {c.reference ? " · against shadow reference models" : ""}
                </div>
              )}
            </td>
            {where && <td className="small">{whereText(c) || "—"}</td>}
            <td className="num">
              {num(c.value)}
              {c.ci && c.ci.length === 2 && (
                <div className="muted small">
                  95 % CI {num(c.ci[0])}–{num(c.ci[1])}
                </div>
              )}
            </td>
            <td className="num">{num(c.threshold)}</td>
            <td>
              <Passed value={c.passed} />
            </td>
            <td className="num">
              {num(c.original_value)}
              {c.original_threshold !== undefined && c.original_threshold !== null && c.original_threshold !== c.threshold && <div className="muted small">threshold {num(c.original_threshold)}</div>}
            </td>
            <td>
              <Passed value={c.original_passed} />
            </td>
            <td>{informativeText(c)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Scalar figures of an evaluation, one level of nesting flattened (``lira.auc``). */
export function figures(evaluation: Record<string, unknown> | null | undefined): Map<string, number | boolean | string> {
  const out = new Map<string, number | boolean | string>();
  const scalar = (v: unknown): v is number | boolean | string => typeof v === "number" || typeof v === "boolean" || typeof v === "string";
  for (const [k, v] of Object.entries(evaluation ?? {})) {
    if (scalar(v)) out.set(k, v);
    else if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) if (scalar(v2)) out.set(`${k}.${k2}`, v2);
    }
  }
  return out;
}

/** Both evaluations of a run, figure by figure. */
export function Evaluations({ evaluation, original }: { evaluation?: Record<string, unknown> | null; original?: Record<string, unknown> | null }): ReactNode {
  const mine = figures(evaluation);
  const theirs = figures(original);
  const keys = [...new Set([...mine.keys(), ...theirs.keys()])];
  if (!keys.length) return <p className="muted small">No evaluation recorded.</p>;
  return (
    <>
      <table className="table compact-rows" data-testid="evaluations">
        <caption className="sr-only">The candidate's and the original's evaluations</caption>
        <thead>
          <tr>
            <th scope="col">Figure</th>
            <th scope="col">Candidate</th>
            <th scope="col">Original</th>
          </tr>
        </thead>
        <tbody>
          {keys.map((k) => (
            <tr key={k}>
              <th scope="row">
                <code>{k}</code>
              </th>
              <td className="num">{formatValue(mine.get(k))}</td>
              <td className="num">{formatValue(theirs.get(k))}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {judgeCells(evaluation) && <JudgeCells evaluation={evaluation} original={original} />}
    </>
  );
}

function AttemptEntry({ attempt, n }: { attempt: Attempt; n: number }): ReactNode {
  const number = attempt.attempt ?? n + 1;
  const checks = attempt.checks ?? [];
  return (
    <li className="attempt" data-testid="attempt">
      <div>
        <strong>Attempt {number}</strong>: {attempt.method} <span className="muted small">({attempt.exact ? "exact" : "approximate"})</span>
        {" · "}
        {attempt.job_id ? (
          <Link to={`/jobs/${attempt.job_id}`} aria-label={`Job ${attempt.job_id} of attempt ${number}`}>
            job <ShortId id={attempt.job_id} />
          </Link>
        ) : (
          <span className="muted">no job</span>
        )}
        {attempt.job_state && <span className="muted small"> ({attempt.job_state})</span>}
        {" · "}
        <span data-testid="attempt-seconds">{duration(attempt.wall_seconds)}</span>
        {" · "}
        {attempt.passed ? <span className="ok-text">passed</span> : <span className="bad-text">not passed</span>} <EvidenceBadge level={attempt.level} />
      </div>
      {/* A failed run's sentence only repeats its reason ("not certified (…)"). */}
      {!attempt.passed && attempt.reason ? <div className="bad-text small">{attempt.reason}</div> : attempt.evidence && <div className="muted small">{attempt.evidence}</div>}
      <details className="attempt-details">
        <summary>Checks ({checks.length})</summary>
        <ChecksTable checks={checks} caption={`Checks of attempt ${number}`} empty={attempt.exact ? "No statistical check: an exact method needs none." : "No check ran."} />
      </details>
      {(attempt.evaluation || attempt.original_evaluation) && (
        <details className="attempt-details">
          <summary>Evaluations (candidate and original)</summary>
          <Evaluations evaluation={attempt.evaluation} original={attempt.original_evaluation} />
        </details>
      )}
    </li>
  );
}

/** Every run of an item, the failed ones too (a fallback replaced them; they stay). */
export function Attempts({ attempts }: { attempts: Attempt[] }): ReactNode {
  if (!attempts.length) return null;
  return (
    <ol className="plain attempts" data-testid="attempts" aria-label="Attempts">
      {attempts.map((a, n) => (
        <AttemptEntry key={`${a.job_id ?? ""}-${n}`} attempt={a} n={n} />
      ))}
    </ol>
  );
}

/** How far a panel's judges and sampler settings disagree, as the verdict reports it. */
function Disagreement({ verdict }: { verdict: Verdict }): ReactNode {
  if (!verdict.disagreement && !verdict.judges?.length) return null;
  const parts = figures(verdict.disagreement ?? {});
  return (
    <p className="muted small" data-testid="disagreement">
      {verdict.judges?.length ? <>Judges: {verdict.judges.join(", ")}. </> : null}
      {verdict.samplers?.length ? <>Sampler settings: {verdict.samplers.map((s) => s ?? "—").join(", ")}. </> : null}
      {parts.size > 0 && <>Disagreement: {[...parts].map(([k, v]) => `${k.replace(/_/g, " ").replace(".", ", ")} ${formatValue(v)}`).join("; ")}.</>}
    </p>
  );
}

/** One item's evidence: its level and sentence, its checks, and every attempt. */
export function ItemEvidence({ verdict, versionId }: { verdict: Verdict; versionId: string }): ReactNode {
  const checks = verdict.checks ?? [];
  const attempts = verdict.attempts ?? [];
  return (
    <article className="evidence" data-testid="item-evidence" aria-label={`Evidence for version ${versionId}`}>
      <h3>
        Version <ShortId id={versionId} /> <EvidenceBadge level={verdict.level} />
      </h3>
      {verdict.evidence && <p data-testid="evidence-sentence">{verdict.evidence}</p>}
      {!verdict.passed && verdict.reason && <p className="bad-text">{verdict.reason}</p>}
      {typeof verdict.informative_checks === "number" && checks.length > 0 && (
        <p className="muted small">
          {verdict.informative_checks} informative forgetting check(s): an approximate verdict needs at least one, every check passing.
        </p>
      )}
      <ChecksTable checks={checks} caption={`Checks of the verdict on version ${versionId}`} empty={verdict.exact ? "No statistical check: an exact method needs none." : "No check ran."} />
      <Disagreement verdict={verdict} />
      {attempts.length > 0 && (
        <>
          <h4>Attempts ({attempts.length})</h4>
          <Attempts attempts={attempts} />
        </>
      )}
    </article>
  );
}
