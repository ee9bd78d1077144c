import type { ReactNode } from "react";
import { Link, useSearchParams } from "react-router";

import { LEGAL_BASIS_TEXT, useDeletionRequests } from "../api/deletion";
import type { DeletionRequest } from "../api/types";
import { useCan } from "../auth";
import { ShortId, StateBadge } from "../components/Badges";
import { Countdown } from "../components/Countdown";
import { Pager, useCursorPager } from "../components/Pager";
import { Empty, QueryView } from "../components/States";
import { Time } from "../components/Time";

export const REQUEST_STATUSES = ["received", "scoped", "awaiting_approval", "unlearning", "verifying", "completed", "failed", "rejected", "cancelled"];

export function RequestTable({ requests, empty, caption }: { requests: DeletionRequest[]; empty: string; caption: string }): ReactNode {
  if (!requests.length) return <Empty>{empty}</Empty>;
  return (
    <table className="table">
      <caption className="sr-only">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Request</th>
          <th scope="col">Status</th>
          <th scope="col">Legal basis</th>
          <th scope="col">Requester reference</th>
          <th scope="col">Scope</th>
          <th scope="col">Deadline</th>
          <th scope="col">Received</th>
        </tr>
      </thead>
      <tbody>
        {requests.map((r) => (
          <tr key={r.id} className={r.overdue ? "row-overdue" : undefined}>
            <td>
              <Link to={`/deletion-requests/${r.id}`} aria-label={`Deletion request ${r.id}`}>
                <ShortId id={r.id} />
              </Link>
            </td>
            <td>
              <StateBadge state={r.status} />
            </td>
            <td>{LEGAL_BASIS_TEXT[r.legal_basis] ?? r.legal_basis}</td>
            <td>{r.requester_reference || <span className="muted">—</span>}</td>
            <td>
              {r.scope_kind.replace("_ids", "").replace("labels", "class")}
              {typeof r.blast_radius.samples === "number" ? <span className="muted small"> · {String(r.blast_radius.samples)} samples</span> : null}
            </td>
            <td>
              <Countdown dueAt={r.due_at} status={r.status} />
              {r.extended && <span className="muted small"> (extended)</span>}
            </td>
            <td>
              <Time value={r.received_at} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function DeletionRequests(): ReactNode {
  const [params, setParams] = useSearchParams();
  const status = params.get("status") || undefined;
  const pager = useCursorPager(status ?? "");
  const requests = useDeletionRequests(status, pager.cursor);
  const canComply = useCan("comply");
  return (
    <section>
      <div className="page-head">
        <h1>Deletion requests</h1>
        {canComply && (
          <Link className="button primary" to="/deletion-requests/new">
            File a request
          </Link>
        )}
      </div>
      <form className="filters" role="search" aria-label="Filter deletion requests" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select
            value={status ?? ""}
            onChange={(e) => {
              const next = new URLSearchParams(params);
              if (e.target.value) next.set("status", e.target.value);
              else next.delete("status");
              setParams(next, { replace: true });
            }}
          >
            <option value="">any</option>
            {REQUEST_STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </form>
      <QueryView query={requests} what="deletion requests">
        {(page) => (
          <>
            <RequestTable requests={page.data} empty={status ? `No request is ${status}.` : "No deletion requests yet."} caption="Deletion requests" />
            <Pager label="Deletion requests" page={pager.page} nextCursor={page.next_cursor} onNext={pager.next} onPrev={pager.prev} />
          </>
        )}
      </QueryView>
    </section>
  );
}
