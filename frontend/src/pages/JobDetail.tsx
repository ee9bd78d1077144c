import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, type ReactNode } from "react";
import { Link, useParams } from "react-router";

import { api, unwrap } from "../api/client";
import { familyNamed, useFamilies } from "../api/families";
import { isActive, useDataset, useJob, useModel } from "../api/queries";
import type { Job, JobEvent } from "../api/types";
import { useCan } from "../auth";
import { Progress, ShortId, StateBadge } from "../components/Badges";
import { JudgeCells, judgeCells } from "../components/JudgeCells";
import { Facts, ObjectTable } from "../components/KeyValue";
import { MetricsCharts } from "../components/MetricsChart";
import { Pager, useSlicePager } from "../components/Pager";
import { Empty, ErrorMessage, QueryView } from "../components/States";
import { BeforeAfterAnswers, Completions, completionsOf } from "../components/TextResults";
import { duration, localText, Time, utcText } from "../components/Time";
import { useJobLive, type LiveStatus } from "../live/useJobLive";

function Timeline({ events }: { events: JobEvent[] }): ReactNode {
  const states = events.filter((e) => e.type === "state");
  if (!states.length) return <Empty>No state changes recorded.</Empty>;
  return (
    <ol className="timeline">
      {states.map((e) => {
        const { state, at: _at, ...extra } = e.data as Record<string, unknown>;
        const note = Object.entries(extra)
          .map(([k, v]) => `${k}: ${String(v)}`)
          .join(" · ");
        return (
          <li key={e.id}>
            <StateBadge state={String(state)} /> <Time value={e.created_at} />
            {note && <div className="muted small">{note}</div>}
          </li>
        );
      })}
    </ol>
  );
}

function LogTail({ events }: { events: JobEvent[] }): ReactNode {
  const lines = events.filter((e) => e.type === "log").slice(-500);
  const ref = useRef<HTMLPreElement>(null);
  const stick = useRef(true);
  useEffect(() => {
    const el = ref.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [lines.length]);
  if (!lines.length) return <Empty>No log lines yet.</Empty>;
  return (
    <pre
      ref={ref}
      className="log"
      tabIndex={0}
      aria-label="Job log"
      onScroll={(e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      }}
    >
      {lines.map((e) => (
        <div key={e.id}>
          <span className="log-time" title={utcText(e.created_at)}>
            {localText(e.created_at).split(", ").pop()}
          </span>{" "}
          {String((e.data as { message?: unknown }).message ?? "")}
        </div>
      ))}
    </pre>
  );
}

const STATUS_TEXT: Record<LiveStatus, string> = {
  idle: "",
  connecting: "connecting to live events…",
  open: "live",
  reconnecting: "connection lost; reconnecting…",
  closed: "",
};

function JobBody({ job }: { job: Job }): ReactNode {
  const queryClient = useQueryClient();
  const canWrite = useCan("write");
  const live = useJobLive(job.id, job);
  const model = useModel(job.model_id);
  const families = useFamilies();
  // A judge scores a judged family's unlearning (its cells below), not the compare table.
  const family = familyNamed(families.data, typeof job.spec.family === "string" ? job.spec.family : model.data?.family);
  const dataset = useDataset(job.dataset_id);
  const active = isActive(job);
  // A generate job lists one artifact per image: page them.
  const { rows: artifactRows, ...artifactPager } = useSlicePager(job.artifacts, 20);
  // A language model's generate job answers in text: its completions, not images.
  const completions = completionsOf(job);
  // Shown as tables of their own, so not again among the final metrics.
  const { completions: _c, forget_answers: _a, ...otherMetrics } = job.metrics as Record<string, unknown>;
  const cancel = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/jobs/{job_id}/cancel", { params: { path: { job_id: job.id } } })),
    onSuccess: (updated) => {
      queryClient.setQueryData(["job", job.id], updated);
      void queryClient.invalidateQueries({ queryKey: ["jobs"] });
    },
  });

  return (
    <>
      <div className="page-head">
        <h1>
          {job.kind === "train" ? "Training" : job.kind === "evaluate" ? "Evaluation" : job.kind} job <ShortId id={job.id} />
        </h1>
        <span aria-live="polite">
          <StateBadge state={job.state} />
          {active && live.status !== "idle" && <span className={`live live-${live.status}`}>{STATUS_TEXT[live.status]}</span>}
        </span>
        {canWrite && active && (
          <button type="button" className="danger" onClick={() => cancel.mutate()} disabled={cancel.isPending || job.state === "cancelling"}>
            {job.state === "cancelling" ? "Cancelling…" : "Cancel job"}
          </button>
        )}
      </div>
      {cancel.error && <ErrorMessage error={cancel.error} title="Could not cancel" />}
      <div className="progress-line" data-testid="job-progress">
        <Progress value={job.progress} label="Job progress" />
      </div>
      {job.error && (
        <div className="error" role="alert">
          <strong>The job failed</strong>
          <p>{job.error}</p>
        </div>
      )}
      {live.streamError !== null && live.status !== "open" && <ErrorMessage error={live.streamError} title="Live updates interrupted" />}
      <div className="grid-2">
        <section aria-labelledby="facts-h">
          <h2 id="facts-h">Details</h2>
          <Facts
            items={[
              ["Kind", `${job.kind}${job.method ? ` · ${job.method}` : ""}`],
              ["Model", job.model_id ? <Link to={`/models/${job.model_id}`}>{model.data?.name ?? job.model_id}</Link> : null],
              [
                "Dataset",
                job.dataset_id ? (
                  <Link to={`/datasets/${job.dataset_id}`}>
                    {dataset.data?.name ?? job.dataset_id}
                    {typeof job.spec.dataset_version === "number" ? ` v${job.spec.dataset_version}` : ""}
                  </Link>
                ) : null,
              ],
              [job.kind === "train" ? "Fine-tuned from" : "Model version", job.model_version_id ? <Link to={`/versions/${job.model_version_id}`}><ShortId id={job.model_version_id} /></Link> : null],
              ...(job.kind === "generate" && completions === null && family?.data !== "text"
                ? ([["Images", <Link to={`/generations/${job.id}`}>open the generated images →</Link>]] as [string, ReactNode][])
                : []),
              ...(job.kind === "unlearn" && family && !family.judged
                ? ([["Compare", <Link to={`/compare?jobs=${[job.id, job.spec.reference_job_id].filter(Boolean).join(",")}&focus=${job.id}`}>compare with its reference, see the views →</Link>]] as [string, ReactNode][])
                : []),
              ["Result version", job.result_version_id ? <Link to={`/versions/${job.result_version_id}`}>open version and lineage →</Link> : null],
              ["Queue", job.queue],
              ["Worker", job.worker ? `${job.worker} (attempt ${job.attempt})` : null],
              ["Created", <Time value={job.created_at} />],
              ["Started", <Time value={job.started_at} />],
              ["Finished", <Time value={job.finished_at} />],
              ["Last heartbeat", <Time value={job.heartbeat_at} />],
              ["Wall time", duration(job.wall_seconds)],
              ["Peak memory", job.peak_memory_mb ? `${job.peak_memory_mb.toFixed(0)} MB` : null],
            ]}
          />
        </section>
        <section aria-labelledby="timeline-h">
          <h2 id="timeline-h">State timeline</h2>
          <QueryView query={live.logs} what="the timeline">
            {() => <Timeline events={live.events} />}
          </QueryView>
        </section>
      </div>
      {completions !== null && (
        <section aria-labelledby="completions-h">
          <h2 id="completions-h">Completions</h2>
          <Completions items={completions} />
        </section>
      )}
      {job.kind === "unlearn" && <BeforeAfterAnswers job={job} />}
      <section aria-labelledby="metrics-h">
        <h2 id="metrics-h">Metrics</h2>
        <QueryView query={live.metrics} what="metrics">
          {() => <MetricsCharts series={live.series} running={active} />}
        </QueryView>
        {judgeCells(job.metrics.evaluation) && (
          <>
            <h3>Judges</h3>
            <JudgeCells evaluation={job.metrics.evaluation} original={job.metrics.original_evaluation} />
          </>
        )}
        {Object.keys(otherMetrics).length > 0 && (
          <>
            <h3>Final metrics</h3>
            <ObjectTable value={otherMetrics} caption="Final metrics" />
          </>
        )}
      </section>
      <section aria-labelledby="log-h">
        <h2 id="log-h">Log</h2>
        <QueryView query={live.logs} what="the log">
          {() => <LogTail events={live.events} />}
        </QueryView>
      </section>
      <div className="grid-2">
        <section aria-labelledby="params-h">
          <h2 id="params-h">Parameters</h2>
          <ObjectTable value={job.params} caption="Parameters" />
        </section>
        <section aria-labelledby="artifacts-h">
          <h2 id="artifacts-h">Artifacts</h2>
          {job.artifacts.length ? (
            <ul className="plain">
              {artifactRows.map((a, i) => (
                <li key={String(a.key ?? a.name ?? i)}>
                  <strong>{String(a.name ?? "artifact")}</strong> <code className="mono small">{String(a.key ?? "")}</code>
                  {typeof a.sha256 === "string" && <div className="muted small">sha256 {a.sha256}</div>}
                </li>
              ))}
            </ul>
          ) : (
            <Empty>{active ? "Artifacts appear when the job succeeds." : "No artifacts."}</Empty>
          )}
          {job.artifacts.length > 0 && (
            <Pager label="Artifacts" {...artifactPager} />
          )}
        </section>
      </div>
    </>
  );
}

export function JobDetail(): ReactNode {
  const { jobId = "" } = useParams();
  const job = useJob(jobId);
  return (
    <section>
      <p className="crumbs">
        <Link to="/jobs">Jobs</Link> /
      </p>
      <QueryView query={job} what="the job">
        {(j) => <JobBody key={j.id} job={j} />}
      </QueryView>
    </section>
  );
}
