import type { ReactNode } from "react";
import { Link } from "react-router";

import type { Job } from "../api/types";
import { Progress, ShortId, StateBadge } from "./Badges";
import { Empty } from "./States";
import { duration, Time } from "./Time";

export function JobTable({ jobs, modelNames, empty, caption }: { jobs: Job[]; modelNames?: Map<string, string>; empty: string; caption: string }): ReactNode {
  if (!jobs.length) return <Empty>{empty}</Empty>;
  return (
    <table className="table">
      <caption className="sr-only">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Job</th>
          <th scope="col">Kind</th>
          <th scope="col">State</th>
          <th scope="col">Progress</th>
          <th scope="col">Model</th>
          <th scope="col">Created</th>
          <th scope="col">Duration</th>
        </tr>
      </thead>
      <tbody>
        {jobs.map((job) => (
          <tr key={job.id}>
            <td>
              <Link to={`/jobs/${job.id}`} aria-label={`Job ${job.id}`}>
                <ShortId id={job.id} />
              </Link>
            </td>
            <td>
              {job.kind}
              {job.method ? ` · ${job.method}` : ""}
            </td>
            <td>
              <StateBadge state={job.state} />
            </td>
            <td>
              <Progress value={job.progress} label={`Progress of ${job.id}`} />
            </td>
            <td>{job.model_id ? <Link to={`/models/${job.model_id}`}>{modelNames?.get(job.model_id) ?? <ShortId id={job.model_id} />}</Link> : "—"}</td>
            <td>
              <Time value={job.created_at} />
            </td>
            <td>{duration(job.wall_seconds ?? (job.started_at && !job.finished_at ? (Date.now() - Date.parse(job.started_at)) / 1000 : null))}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
