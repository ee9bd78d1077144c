/** Queries and rules for deletion requests and the audit log (mirrors core/deletion/flows.py). */
import { keepPreviousData, useQuery, useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useEffect, useRef } from "react";

import { api, unwrap } from "./client";
import type { DeletionRequest, TimelineEntry } from "./types";

export const OPEN_STATUSES = ["received", "scoped", "awaiting_approval", "unlearning", "verifying"];
/** Where reject and cancel are still possible: before unlearning starts. */
export const UNDECIDED = ["received", "scoped", "awaiting_approval"];
export const MOVING = ["unlearning", "verifying"];

export const isOpen = (r: Pick<DeletionRequest, "status">) => OPEN_STATUSES.includes(r.status);

export function useDeletionRequests(status: string | undefined, cursor?: string, limit = 25) {
  return useQuery({
    queryKey: ["deletion-requests", status, cursor, limit],
    queryFn: () => unwrap(api.GET("/api/v1/deletion-requests", { params: { query: { status, cursor, limit } } })),
    placeholderData: keepPreviousData,
    refetchInterval: (q) => (q.state.data?.data.some((r) => MOVING.includes(r.status)) ? 3_000 : 30_000),
  });
}

/**
 * Everything that shows a request's state goes stale when it changes: every list (the
 * overview's panels included: their keys start with "deletion-requests"), its page, its
 * timeline, and the jobs lists (its runs). Called after an action, when a request's own
 * query sees its status move, and when a job that served a request ends.
 */
export function invalidateRequest(queryClient: QueryClient, requestId: string, self = true): void {
  void queryClient.invalidateQueries({ queryKey: ["deletion-requests"] });
  void queryClient.invalidateQueries({ queryKey: ["deletion-timeline", requestId] });
  void queryClient.invalidateQueries({ queryKey: ["jobs"] });
  if (self) void queryClient.invalidateQueries({ queryKey: ["deletion-request", requestId] });
}

export type OverviewRequests = { open: DeletionRequest[]; recent: DeletionRequest[] };

/**
 * The overview's two panels from one snapshot, so they cannot contradict each other. The
 * lists are read one status after another while requests move on, so one request can be
 * read twice; statuses only move forward, so the later read wins: a request also among the
 * completed ones is not open any more, and one read under two open statuses is shown once,
 * as the later (further) one.
 */
export function overviewSnapshot(openReads: DeletionRequest[], recent: DeletionRequest[]): OverviewRequests {
  const closed = new Set(recent.map((r) => r.id));
  const latest = new Map<string, DeletionRequest>();
  for (const r of openReads) if (!closed.has(r.id)) latest.set(r.id, r);
  const open = [...latest.values()].sort((a, b) => Date.parse(a.due_at) - Date.parse(b.due_at));
  return { open, recent };
}

async function openRequests(): Promise<DeletionRequest[]> {
  const out: DeletionRequest[] = [];
  for (const status of OPEN_STATUSES) {
    let cursor: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await unwrap(api.GET("/api/v1/deletion-requests", { params: { query: { status, cursor, limit: 200 } } }));
      out.push(...page.data);
      if (!page.next_cursor) break;
      cursor = page.next_cursor;
    }
  }
  return out;
}

/** Open requests by deadline and the newest completed ones, read together (one query,
 * one refresh): the overview never lists a request as open beside its certificate. */
export function useOverviewRequests(recentLimit = 5) {
  return useQuery({
    queryKey: ["deletion-requests", "overview", recentLimit],
    queryFn: async () => {
      const open = await openRequests(); // first: what completes meanwhile is in `recent`
      const recent = await unwrap(api.GET("/api/v1/deletion-requests", { params: { query: { status: "completed", limit: recentLimit } } }));
      return overviewSnapshot(open, recent.data);
    },
    refetchInterval: (q) => (q.state.data?.open.some((r) => MOVING.includes(r.status)) ? 3_000 : 15_000),
  });
}

export function useDeletionRequest(requestId: string) {
  const queryClient = useQueryClient();
  const query = useQuery({
    queryKey: ["deletion-request", requestId],
    queryFn: () => unwrap(api.GET("/api/v1/deletion-requests/{request_id}", { params: { path: { request_id: requestId } } })),
    // While its jobs run, the request moves on its own (workers, the sweeper): follow it.
    refetchInterval: (q) => (q.state.data && MOVING.includes(q.state.data.status) ? 2_000 : false),
  });
  // When it moves (seen by the polling above), what else shows it is stale too.
  const state = query.data ? `${query.data.status}/${query.data.has_certificate}` : undefined;
  const seen = useRef(state);
  useEffect(() => {
    if (state === undefined) return;
    if (seen.current !== undefined && seen.current !== state) invalidateRequest(queryClient, requestId, false);
    seen.current = state;
  }, [state, requestId, queryClient]);
  return query;
}

export function useTimeline(requestId: string, status: string | undefined) {
  return useQuery({
    queryKey: ["deletion-timeline", requestId, status],
    queryFn: async () => (await unwrap(api.GET("/api/v1/deletion-requests/{request_id}/timeline", { params: { path: { request_id: requestId } } }))) as TimelineEntry[],
    enabled: status !== undefined,
  });
}

export type Deadline = { text: string; tone: "overdue" | "soon" | "ok" | "closed"; label: string };

function span(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  if (days >= 2) return `${days} days`;
  if (days === 1) return hours ? `1 day ${hours} h` : "1 day";
  if (hours >= 1) return `${hours} h ${minutes % 60} min`;
  return `${Math.max(minutes, 0)} min`;
}

/**
 * The deadline as a countdown: "12 days left", "due in 5 h 3 min", "overdue by 2 days".
 * Closed requests have no countdown. `dueSoonDays` matches flows.due_soon (7 days).
 */
export function deadline(dueAt: string, status: string, now: number = Date.now(), dueSoonDays = 7): Deadline {
  const due = Date.parse(dueAt);
  if (!OPEN_STATUSES.includes(status)) return { text: "closed", tone: "closed", label: "Closed; no deadline running" };
  const left = due - now;
  if (left < 0) {
    const text = `overdue by ${span(-left)}`;
    return { text, tone: "overdue", label: `Deadline passed: ${text}` };
  }
  const text = `${span(left)} left`;
  if (left <= dueSoonDays * 86_400_000) return { text, tone: "soon", label: `Due soon: ${text}` };
  return { text, tone: "ok", label: text };
}

export const LEGAL_BASIS_TEXT: Record<string, string> = {
  gdpr_art17: "GDPR Art. 17",
  ccpa: "CCPA",
  other: "Other",
};
