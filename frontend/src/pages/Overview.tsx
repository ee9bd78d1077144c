import type { ReactNode } from "react";
import { Link } from "react-router";

import { useAllModels, useHealth, useJobs } from "../api/queries";
import type { Check } from "../api/types";
import { useCan } from "../auth";
import { JobTable } from "../components/JobTable";
import { QueryView } from "../components/States";

function CheckCard({ name, check }: { name: string; check: Check }): ReactNode {
  return (
    <div className={`card check ${check.ok ? "ok" : "bad"}`}>
      <h3>{name}</h3>
      <p className="check-state">
        <span aria-hidden="true">{check.ok ? "●" : "▲"}</span> {check.ok ? "OK" : "Unavailable"}
      </p>
      <p className="muted">
        {check.detail || "—"}
        {check.latency_ms !== null && check.latency_ms !== undefined ? ` · ${check.latency_ms.toFixed(1)} ms` : ""}
      </p>
    </div>
  );
}

export function Overview(): ReactNode {
  const health = useHealth();
  const running = useJobs({ state: "running" }, undefined, 20);
  const queued = useJobs({ state: "queued" }, undefined, 20);
  const recent = useJobs({}, undefined, 10);
  const models = useAllModels();
  const names = new Map((models.data ?? []).map((m) => [m.id, m.name]));
  const canWrite = useCan("write");
  return (
    <section>
      <div className="page-head">
        <h1>Overview</h1>
        {canWrite && (
          <Link className="button primary" to="/jobs/new">
            Submit a job
          </Link>
        )}
      </div>
      <h2>Service health</h2>
      <QueryView query={health} what="health">
        {(h) => (
          <>
            <p>
              Overall: <span className={`badge ${h.status === "ok" ? "state-succeeded" : "state-failed"}`}>{h.status}</span>
              {h.outbox_backlog !== null && h.outbox_backlog !== undefined && <span className="muted"> · queue outbox backlog {h.outbox_backlog}</span>}
            </p>
            <div className="cards">
              <CheckCard name="Database" check={h.database} />
              <CheckCard name="Queue" check={h.queue} />
              <CheckCard name="Object storage" check={h.storage} />
            </div>
          </>
        )}
      </QueryView>
      <h2>Running jobs</h2>
          <QueryView query={running} what="running jobs">
            {(page) => <JobTable jobs={page.data} modelNames={names} empty="No job is running." caption="Running jobs" />}
      </QueryView>
      <h2>Queued jobs</h2>
          <QueryView query={queued} what="queued jobs">
        {(page) => <JobTable jobs={page.data} modelNames={names} empty="Nothing is waiting in the queue." caption="Queued jobs" />}
      </QueryView>
      <h2>
        Recent jobs <Link to="/jobs" className="small">all jobs →</Link>
      </h2>
      <QueryView query={recent} what="recent jobs">
        {(page) => <JobTable jobs={page.data} modelNames={names} empty="No jobs yet." caption="Recent jobs" />}
      </QueryView>
    </section>
  );
}
