import { useQuery } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Link } from "react-router";

import { api, unwrap } from "../api/client";
import { useOverviewRequests } from "../api/deletion";
import { useAllModels, useHealth, useJobs } from "../api/queries";
import type { Check, DeletionRequest } from "../api/types";
import { useCan } from "../auth";
import { Mono, ShortId } from "../components/Badges";
import { JobTable } from "../components/JobTable";
import { Empty, QueryView } from "../components/States";
import { Time } from "../components/Time";
import { checkCheckpoint } from "../verify/certificate";
import { importPublicKey } from "../verify/crypto";
import { RequestTable } from "./DeletionRequests";

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

function RecentCertificates({ recent }: { recent: DeletionRequest[] }): ReactNode {
  if (!recent.length) return <Empty>No request has completed yet.</Empty>;
  return (
    <ul className="plain" data-testid="recent-certificates">
      {recent.map((r) => (
        <li key={r.id}>
          <Link to={`/deletion-requests/${r.id}`}>
            <ShortId id={r.id} />
          </Link>{" "}
          {r.has_certificate ? "certificate issued" : "completed"} <Time value={r.completed_at} />
          {r.requester_reference && <span className="muted small"> · {r.requester_reference}</span>}
        </li>
      ))}
    </ul>
  );
}

/** The newest signed checkpoint, its signature checked here with the public key. */
function LatestCheckpoint(): ReactNode {
  const latest = useQuery({
    queryKey: ["checkpoint-latest"],
    queryFn: async () => {
      const cp = (await unwrap(api.GET("/api/v1/audit/checkpoints", { params: { query: { limit: 1 } } }))).data[0];
      if (!cp) return null;
      const key = await importPublicKey(String(await unwrap(api.GET("/api/v1/audit/public-key", { parseAs: "text" }))));
      return { cp, check: await checkCheckpoint(cp, key) };
    },
    refetchInterval: 60_000,
  });
  return (
    <QueryView query={latest} what="the latest checkpoint">
      {(v) =>
        v ? (
          <p data-testid="latest-checkpoint">
            <span className={v.check.ok ? "ok-text" : "bad-text"}>{v.check.ok ? "✓ signature verified" : `✗ ${v.check.detail}`}</span>: {v.cp.tree_size} events, signed <Time value={v.cp.at} />, root <Mono title={v.cp.root_hash}>{v.cp.root_hash.slice(0, 16)}…</Mono>{" "}
            <Link to="/audit" className="small">
              verify the chain →
            </Link>
          </p>
        ) : (
          <Empty>No checkpoint signed yet.</Empty>
        )
      }
    </QueryView>
  );
}

export function Overview(): ReactNode {
  // One query feeds both panels: open requests and recent certificates always agree.
  const requests = useOverviewRequests();
  const canAudit = useCan("audit");
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
      <h2>
        Open deletion requests, by deadline <Link to="/deletion-requests" className="small">all requests →</Link>
      </h2>
      <QueryView query={requests} what="open deletion requests">
        {(v) => <RequestTable requests={v.open.slice(0, 10)} empty="No deletion request is open." caption="Open deletion requests by deadline" />}
      </QueryView>
      <div className="grid-2">
        <section aria-labelledby="certs-h">
          <h2 id="certs-h">Recent certificates</h2>
          <QueryView query={requests} what="recent certificates">
            {(v) => <RecentCertificates recent={v.recent} />}
          </QueryView>
        </section>
        {canAudit && (
          <section aria-labelledby="cp-latest-h">
            <h2 id="cp-latest-h">Audit log</h2>
            <LatestCheckpoint />
          </section>
        )}
      </div>
      <h2>
        Running jobs <Link to="/jobs?state=running" className="small">all running →</Link>
      </h2>
      <QueryView query={running} what="running jobs">
        {(page) => <JobTable jobs={page.data} modelNames={names} empty="No job is running." caption="Running jobs" />}
      </QueryView>
      <h2>
        Queued jobs <Link to="/jobs?state=queued" className="small">all queued →</Link>
      </h2>
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
