/**
 * A job page's live view: the log/state events and metric series from REST, then
 * every later event from the SSE stream (resuming with Last-Event-ID after a drop),
 * folded into the same state and into the cached job.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useRef, useState } from "react";

import { api, unwrap } from "../api/client";
import { toApiError } from "../api/errors";
import { invalidateRequest } from "../api/deletion";
import { isActive } from "../api/queries";
import type { Job, JobEvent, MetricPoint } from "../api/types";
import { mergeEvents, mergeSeries, type Series } from "./merge";
import { subscribe, type SseEvent } from "./sse";

const MAX_LOG_EVENTS = 5000;
export type LiveStatus = "idle" | "connecting" | "open" | "reconnecting" | "closed";

async function allLogEvents(jobId: string): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  let cursor: number | undefined;
  while (out.length < MAX_LOG_EVENTS) {
    const page = await unwrap(api.GET("/api/v1/jobs/{job_id}/logs", { params: { path: { job_id: jobId }, query: { cursor, limit: 1000 } } }));
    out.push(...page.data);
    if (!page.next_cursor) break;
    cursor = Number(page.next_cursor);
  }
  return out;
}

/** The deletion requests a workflow job serves (a batched run serves several). */
export function servedRequests(job: Pick<Job, "spec"> | undefined): string[] {
  const spec = (job?.spec ?? {}) as { deletion_request_ids?: unknown; deletion_request_id?: unknown };
  const ids = Array.isArray(spec.deletion_request_ids) ? spec.deletion_request_ids : [spec.deletion_request_id];
  return ids.filter((id): id is string => typeof id === "string" && id.length > 0);
}

export function useJobLive(jobId: string, job: Job | undefined) {
  const queryClient = useQueryClient();
  const logs = useQuery({ queryKey: ["job-logs", jobId], queryFn: () => allLogEvents(jobId) });
  // Fetched after the logs, so every metric up to the stream's start is in it.
  const metrics = useQuery({
    queryKey: ["job-metrics", jobId],
    queryFn: () => unwrap(api.GET("/api/v1/jobs/{job_id}/metrics", { params: { path: { job_id: jobId } } })),
    enabled: logs.isSuccess,
  });
  const [liveEvents, setLiveEvents] = useState<JobEvent[]>([]);
  const [liveSeries, setLiveSeries] = useState<Series>({});
  const [status, setStatus] = useState<LiveStatus>("idle");
  const [streamError, setStreamError] = useState<unknown>(null);
  const startAfter = useRef<number | null>(null);

  const active = job ? isActive(job) : false;
  const ready = logs.isSuccess && metrics.isSuccess;
  if (ready && startAfter.current === null) {
    startAfter.current = logs.data.reduce((m, e) => Math.max(m, e.id), 0);
  }

  useEffect(() => {
    if (!active || !ready) return;
    const patchJob = (patch: Partial<Job>) =>
      queryClient.setQueryData<Job>(["job", jobId], (old) => (old ? { ...old, ...patch } : old));
    const onEvent = (e: SseEvent) => {
      let data: Record<string, unknown> = {};
      try {
        data = JSON.parse(e.data) as Record<string, unknown>;
      } catch {
        return;
      }
      const at = typeof data.at === "string" ? data.at : new Date().toISOString();
      const id = e.id ? Number(e.id) : NaN;
      switch (e.event) {
        case "progress":
          if (typeof data.progress === "number") patchJob({ progress: data.progress });
          break;
        case "metric": {
          const point: MetricPoint = { step: (data.step as number | null) ?? null, value: Number(data.value), at };
          const name = String(data.name);
          setLiveSeries((s) => ({ ...s, [name]: [...(s[name] ?? []), point] }));
          break;
        }
        case "log":
        case "state":
          if (!Number.isNaN(id)) setLiveEvents((list) => [...list, { id, type: e.event, data, created_at: at }]);
          if (e.event === "state" && typeof data.state === "string") {
            patchJob({ state: data.state });
            void queryClient.invalidateQueries({ queryKey: ["job", jobId] });
            if (!isActive({ state: data.state })) {
              // Final metrics are written with the last state; the stream closes next.
              // Refetched, the cache holds the whole story for the next visit.
              void queryClient.invalidateQueries({ queryKey: ["job-metrics", jobId] });
              void queryClient.invalidateQueries({ queryKey: ["job-logs", jobId] });
              void queryClient.invalidateQueries({ queryKey: ["jobs"] });
              // A workflow run that ends moves the requests it served on.
              for (const requestId of servedRequests(queryClient.getQueryData<Job>(["job", jobId]))) invalidateRequest(queryClient, requestId);
            }
          }
          break;
        case "end":
          void queryClient.invalidateQueries({ queryKey: ["job", jobId] });
          void queryClient.invalidateQueries({ queryKey: ["job-metrics", jobId] });
          void queryClient.invalidateQueries({ queryKey: ["jobs"] });
          break;
      }
    };
    setStreamError(null);
    return subscribe({
      lastEventId: String(startAfter.current ?? 0),
      connect: async (lastEventId, signal) => {
        const { data, error, response } = await api.GET("/api/v1/jobs/{job_id}/events", {
          params: { path: { job_id: jobId }, header: lastEventId ? { "last-event-id": lastEventId } : undefined },
          parseAs: "stream",
          signal,
        });
        if (error !== undefined || !response.ok || !data) throw toApiError(error, response);
        return data as ReadableStream<Uint8Array>;
      },
      onEvent,
      isFinal: (e) => e.event === "end",
      onStatus: (s, err) => {
        setStatus(s);
        if (err) setStreamError(err);
      },
      onFatal: setStreamError,
    });
  }, [active, ready, jobId, queryClient]);

  const events = useMemo(() => mergeEvents(logs.data ?? [], liveEvents), [logs.data, liveEvents]);
  const series = useMemo(() => mergeSeries(metrics.data?.series ?? {}, liveSeries), [metrics.data, liveSeries]);
  return { logs, metrics, events, series, status, streamError };
}
