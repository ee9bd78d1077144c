/**
 * Compare unlearning jobs: pick them from a searchable list, see UA / RA / TA / MIA /
 * Avg. Gap / cost side by side and as a forgetting-vs-utility scatter, then open one
 * job's stored views. The selection lives in the URL (?jobs=a,b&focus=a), so a view
 * can be shared as a link.
 */
import { useMemo, useState, type ReactNode } from "react";
import { Link, useSearchParams } from "react-router";
import { CartesianGrid, Legend, ResponsiveContainer, Scatter, ScatterChart, Tooltip, XAxis, YAxis, ZAxis } from "recharts";

import { useCompare, type CompareRow } from "../api/compare";
import { useJobs } from "../api/queries";
import type { Job } from "../api/types";
import { ShortId } from "../components/Badges";
import { Empty, ErrorMessage, Loading, QueryView } from "../components/States";
import { duration, Time } from "../components/Time";
import { JobViewsPanel, pct } from "./CompareViews";

const MAX_SELECTED = 20;
const POINT_COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];

type Axis = "UA" | "MIA" | "TA" | "RA";

function jobLabel(job: Pick<Job, "method" | "kind" | "id">): string {
  return `${job.method ?? job.kind} · ${job.id.slice(-8)}`;
}

function Picker({ selected, onToggle }: { selected: string[]; onToggle: (id: string) => void }): ReactNode {
  const [kind, setKind] = useState<"unlearn" | "evaluate">("unlearn");
  const [search, setSearch] = useState("");
  const jobs = useJobs({ kind, state: "succeeded" }, undefined, 200);
  const needle = search.trim().toLowerCase();
  return (
    <fieldset className="card cmp-picker">
      <legend>Pick jobs</legend>
      <div className="filters">
        <label>
          Kind{" "}
          <select value={kind} onChange={(e) => setKind(e.target.value as "unlearn" | "evaluate")}>
            <option value="unlearn">unlearning jobs</option>
            <option value="evaluate">evaluate jobs</option>
          </select>
        </label>
        <label>
          Search{" "}
          <input type="search" value={search} placeholder="method, job, model or version id" onChange={(e) => setSearch(e.target.value)} />
        </label>
      </div>
      <QueryView query={jobs} what="jobs">
        {(page) => {
          const shown = page.data.filter((j) =>
            needle ? [j.id, j.method ?? "", j.model_id ?? "", j.model_version_id ?? "", j.result_version_id ?? ""].some((s) => s.toLowerCase().includes(needle)) : true,
          );
          if (!page.data.length) return <Empty>No succeeded {kind} job yet. Unlearn a model version (Jobs → Submit a job) to compare methods.</Empty>;
          if (!shown.length) return <Empty>No {kind} job matches &ldquo;{search}&rdquo;.</Empty>;
          return (
            <ul className="cmp-choices" aria-label={`Succeeded ${kind} jobs`}>
              {shown.map((j) => {
                const checked = selected.includes(j.id);
                return (
                  <li key={j.id}>
                    <label>
                      <input type="checkbox" checked={checked} disabled={!checked && selected.length >= MAX_SELECTED} onChange={() => onToggle(j.id)} />{" "}
                      <strong>{j.method ?? j.kind}</strong> <ShortId id={j.id} />{" "}
                      <span className="muted small">
                        {String(j.spec.forget_kind ?? "")} {j.spec.forget_count !== undefined ? `(${String(j.spec.forget_count)})` : ""} · version <ShortId id={j.model_version_id} /> ·{" "}
                        <Time value={j.finished_at} />
                      </span>
                    </label>
                  </li>
                );
              })}
            </ul>
          );
        }}
      </QueryView>
    </fieldset>
  );
}

function CompareTable({ rows, focus, onFocus, onRemove }: { rows: CompareRow[]; focus: string | null; onFocus: (id: string) => void; onRemove: (id: string) => void }): ReactNode {
  return (
    <div className="cmp-scroll">
      <table className="table">
        <caption className="sr-only">Selected jobs side by side</caption>
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">Method</th>
            <th scope="col">Forget</th>
            <th scope="col" className="num" title="Unlearning accuracy: 1 − forget accuracy">
              UA
            </th>
            <th scope="col" className="num" title="Retain accuracy">
              RA
            </th>
            <th scope="col" className="num" title="Test accuracy">
              TA
            </th>
            <th scope="col" className="num" title="MIA-efficacy: share of the forget set judged non-member">
              MIA
            </th>
            <th scope="col" className="num" title="Mean |Δ| over UA, RA, TA, MIA to the retrained reference">
              Avg. gap
            </th>
            <th scope="col" className="num">
              Time
            </th>
            <th scope="col" className="num" title="Reference retraining time / this job's time">
              Speed-up
            </th>
            <th scope="col">Views</th>
            <th scope="col">
              <span className="sr-only">Remove</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.job_id} aria-current={focus === r.job_id ? "true" : undefined}>
              <td>
                <Link to={`/jobs/${r.job_id}`} aria-label={`Job ${r.job_id}`}>
                  <ShortId id={r.job_id} />
                </Link>
              </td>
              <td>
                {r.method ?? r.kind}
                {r.exact ? <span className="badge"> exact</span> : null}
              </td>
              <td>
                {r.forget_kind ?? "—"}
                {r.forget_count !== null ? ` (${r.forget_count})` : ""}
              </td>
              <td className="num">{pct(r.UA)}</td>
              <td className="num">{pct(r.RA)}</td>
              <td className="num">{pct(r.TA)}</td>
              <td className="num">{pct(r.MIA)}</td>
              <td className="num">{r.avg_gap === null ? "—" : pct(r.avg_gap, 2)}</td>
              <td className="num">{r.seconds === null ? "—" : duration(r.seconds)}</td>
              <td className="num">{r.speedup === null ? "—" : `×${r.speedup.toFixed(1)}`}</td>
              <td>
                <button type="button" aria-pressed={focus === r.job_id} disabled={!r.has_views} title={r.has_views ? undefined : "This job stored no views"} onClick={() => onFocus(r.job_id)}>
                  {focus === r.job_id ? "Showing" : "Show views"}
                  <span className="sr-only"> of {jobLabel({ id: r.job_id, method: r.method, kind: r.kind })}</span>
                </button>
              </td>
              <td>
                <button type="button" aria-label={`Remove ${jobLabel({ id: r.job_id, method: r.method, kind: r.kind })}`} onClick={() => onRemove(r.job_id)}>
                  ✕
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function TradeOff({ rows }: { rows: CompareRow[] }): ReactNode {
  const [x, setX] = useState<Axis>("UA");
  const [y, setY] = useState<Axis>("TA");
  const points = rows.filter((r) => r[x] !== null && r[y] !== null);
  return (
    <section className="card" aria-labelledby="cmp-tradeoff">
      <div className="page-head">
        <h2 id="cmp-tradeoff">Forgetting vs utility</h2>
        <div className="filters">
          <label>
            Forgetting (x){" "}
            <select value={x} onChange={(e) => setX(e.target.value as Axis)}>
              <option value="UA">UA</option>
              <option value="MIA">MIA-efficacy</option>
            </select>
          </label>
          <label>
            Utility (y){" "}
            <select value={y} onChange={(e) => setY(e.target.value as Axis)}>
              <option value="TA">TA</option>
              <option value="RA">RA</option>
            </select>
          </label>
        </div>
      </div>
      {points.length ? (
        <figure className="chart" aria-label={`${y} against ${x}, one point per job`}>
          <figcaption className="muted small">
            x: {x}, y: {y}
          </figcaption>
          <ResponsiveContainer width="100%" height={280}>
            <ScatterChart margin={{ top: 8, right: 16, bottom: 4, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" stroke="#e5e7eb" />
              <XAxis dataKey="x" type="number" name={x} domain={[0, 1]} tickFormatter={(t: number) => `${Math.round(t * 100)}%`} tick={{ fontSize: 12 }} />
              <YAxis dataKey="y" type="number" name={y} domain={[0, 1]} tickFormatter={(t: number) => `${Math.round(t * 100)}%`} width={48} tick={{ fontSize: 12 }} />
              <ZAxis range={[80, 80]} />
              <Tooltip formatter={(value) => (typeof value === "number" ? pct(value) : String(value))} />
              <Legend wrapperStyle={{ fontSize: 12 }} />
              {points.map((r, i) => (
                <Scatter
                  key={r.job_id}
                  name={jobLabel({ id: r.job_id, method: r.method, kind: r.kind })}
                  data={[{ x: r[x], y: r[y] }]}
                  fill={POINT_COLORS[i % POINT_COLORS.length]}
                  shape={r.exact ? "star" : "circle"}
                  isAnimationActive={false}
                />
              ))}
            </ScatterChart>
          </ResponsiveContainer>
        </figure>
      ) : (
        <Empty>No selected job has both {x} and {y} (was it evaluated on a test split?).</Empty>
      )}
      <p className="muted small">Stars are exact methods (retraining, SISA): the target. Closer to the reference is better, not higher.</p>
    </section>
  );
}

export function Compare(): ReactNode {
  const [params, setParams] = useSearchParams();
  const selected = useMemo(() => (params.get("jobs") ?? "").split(",").filter(Boolean).slice(0, MAX_SELECTED), [params]);
  const focus = params.get("focus");
  const compare = useCompare(selected);

  const update = (jobs: string[], nextFocus: string | null) => {
    const next = new URLSearchParams(params);
    if (jobs.length) next.set("jobs", jobs.join(","));
    else next.delete("jobs");
    if (nextFocus && jobs.includes(nextFocus)) next.set("focus", nextFocus);
    else next.delete("focus");
    setParams(next, { replace: true });
  };
  const toggle = (id: string) => update(selected.includes(id) ? selected.filter((s) => s !== id) : [...selected, id], focus);

  return (
    <section>
      <div className="page-head">
        <h1>Compare</h1>
      </div>
      <p className="muted">Unlearning methods side by side, against the retrained reference; then, for one job, what changed inside the model.</p>
      <div className="cmp-layout">
        <Picker selected={selected} onToggle={toggle} />
        <div className="cmp-main">
          {!selected.length ? (
            <Empty>Pick one or more unlearning jobs to compare them.</Empty>
          ) : compare.isPending ? (
            <Loading what="Loading the comparison" />
          ) : compare.error ? (
            <ErrorMessage error={compare.error} title="Could not compare these jobs" retry={() => void compare.refetch()} />
          ) : (
            <>
              <section className="card" aria-labelledby="cmp-table">
                <h2 id="cmp-table">Side by side</h2>
                <CompareTable rows={compare.data?.data ?? []} focus={focus} onFocus={(id) => update(selected, id)} onRemove={(id) => update(selected.filter((s) => s !== id), focus)} />
              </section>
              <TradeOff rows={compare.data?.data ?? []} />
            </>
          )}
          {focus && selected.includes(focus) ? (
            <section aria-labelledby="cmp-views">
              <h2 id="cmp-views">
                Views of <ShortId id={focus} />
              </h2>
              <JobViewsPanel jobId={focus} />
            </section>
          ) : selected.length ? (
            <Empty>Choose &ldquo;Show views&rdquo; on a row for its class-wise accuracy, prediction matrix, feature map, layer similarity and attack view.</Empty>
          ) : null}
        </div>
      </div>
    </section>
  );
}
