import type { ReactNode } from "react";
import { Link, useSearchParams } from "react-router";

import { parameterChoices } from "../api/openapi";
import { useAllModels, useJobs, type JobFilters } from "../api/queries";
import { useCan } from "../auth";
import { JobTable } from "../components/JobTable";
import { Pager, useCursorPager } from "../components/Pager";
import { QueryView } from "../components/States";

const KINDS = parameterChoices("/api/v1/jobs", "get", "kind");
const STATES = parameterChoices("/api/v1/jobs", "get", "state");

export function Jobs(): ReactNode {
  const [params, setParams] = useSearchParams();
  const filters: JobFilters = {
    kind: params.get("kind") || undefined,
    state: params.get("state") || undefined,
    model_id: params.get("model_id") || undefined,
  };
  const pager = useCursorPager(JSON.stringify(filters));
  const jobs = useJobs(filters, pager.cursor);
  const models = useAllModels();
  const names = new Map((models.data ?? []).map((m) => [m.id, m.name]));
  const canWrite = useCan("write");

  const setFilter = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next, { replace: true });
  };

  return (
    <section>
      <div className="page-head">
        <h1>Jobs</h1>
        {canWrite && (
          <Link className="button primary" to="/jobs/new">
            Submit a job
          </Link>
        )}
      </div>
      <form className="filters" role="search" aria-label="Filter jobs" onSubmit={(e) => e.preventDefault()}>
        <label>
          Kind
          <select value={filters.kind ?? ""} onChange={(e) => setFilter("kind", e.target.value)}>
            <option value="">any</option>
            {KINDS.map((k) => (
              <option key={k}>{k}</option>
            ))}
          </select>
        </label>
        <label>
          State
          <select value={filters.state ?? ""} onChange={(e) => setFilter("state", e.target.value)}>
            <option value="">any</option>
            {STATES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Model
          <select value={filters.model_id ?? ""} onChange={(e) => setFilter("model_id", e.target.value)}>
            <option value="">any</option>
            {(models.data ?? []).map((m) => (
              <option key={m.id} value={m.id}>
                {m.name}
              </option>
            ))}
          </select>
        </label>
        {(filters.kind || filters.state || filters.model_id) && (
          <button type="button" onClick={() => setParams(new URLSearchParams(), { replace: true })}>
            Clear filters
          </button>
        )}
      </form>
      <QueryView query={jobs} what="jobs">
        {(page) => (
          <>
            <JobTable jobs={page.data} modelNames={names} empty="No jobs match these filters." caption="Jobs" />
            <Pager label="Jobs" page={pager.page} nextCursor={page.next_cursor} onNext={pager.next} onPrev={pager.prev} />
          </>
        )}
      </QueryView>
    </section>
  );
}
