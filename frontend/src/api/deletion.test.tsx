import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { act, renderHook, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { fakeRequest } from "../test/harness";
import { deadline, overviewSnapshot } from "./deletion";
import type { DeletionRequest } from "./types";

const NOW = Date.parse("2026-11-28T12:00:00Z");
const at = (hours: number) => new Date(NOW + hours * 3_600_000).toISOString();

describe("deadline countdown", () => {
  it("counts days while far off", () => {
    expect(deadline(at(24 * 20 + 5), "awaiting_approval", NOW)).toMatchObject({ text: "20 days left", tone: "ok" });
  });

  it("flags a deadline within seven days as due soon", () => {
    expect(deadline(at(24 * 6), "unlearning", NOW)).toMatchObject({ text: "6 days left", tone: "soon" });
    expect(deadline(at(30), "scoped", NOW)).toMatchObject({ text: "1 day 6 h left", tone: "soon" });
    expect(deadline(at(5.5), "received", NOW)).toMatchObject({ text: "5 h 30 min left", tone: "soon" });
    expect(deadline(at(0.25), "received", NOW)).toMatchObject({ text: "15 min left", tone: "soon" });
  });

  it("says by how much an open request is overdue", () => {
    const d = deadline(at(-24 * 3 - 2), "awaiting_approval", NOW);
    expect(d).toMatchObject({ text: "overdue by 3 days", tone: "overdue" });
    expect(d.label).toBe("Deadline passed: overdue by 3 days");
    expect(deadline(at(-2), "verifying", NOW).text).toBe("overdue by 2 h 0 min");
  });

  it("has no countdown once the request is closed", () => {
    for (const status of ["completed", "failed", "rejected", "cancelled"]) {
      expect(deadline(at(-100), status, NOW).tone).toBe("closed");
    }
  });
});

describe("request changes invalidate every panel that shows them", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("a request whose status moves makes the lists (overview included), timeline and jobs stale", async () => {
    let status = "verifying";
    vi.stubGlobal(
      "fetch",
      vi.fn(async () => new Response(JSON.stringify(fakeRequest({ id: "dr_1", status, has_certificate: status === "completed" })), { headers: { "content-type": "application/json" } })),
    );
    vi.resetModules(); // the API client takes fetch when it is imported
    const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    client.setQueryData(["deletion-requests", "overview", 5], { open: [fakeRequest({ id: "dr_1", status: "verifying" })], recent: [] });
    client.setQueryData(["deletion-timeline", "dr_1", "verifying"], []);
    client.setQueryData(["jobs", {}, undefined, 25], { data: [] });
    const wrapper = ({ children }: { children: ReactNode }) => <QueryClientProvider client={client}>{children}</QueryClientProvider>;
    const { useDeletionRequest } = await import("./deletion");
    const { result } = renderHook(() => useDeletionRequest("dr_1"), { wrapper });
    await waitFor(() => expect(result.current.data?.status).toBe("verifying"));
    const stale = (key: unknown[]) => client.getQueryState(key)?.isInvalidated;
    expect(stale(["deletion-requests", "overview", 5])).toBe(false); // first read: nothing moved
    status = "completed";
    await act(async () => {
      await result.current.refetch();
    });
    await waitFor(() => expect(stale(["deletion-requests", "overview", 5])).toBe(true));
    expect(stale(["deletion-timeline", "dr_1", "verifying"])).toBe(true);
    expect(stale(["jobs", {}, undefined, 25])).toBe(true);
  });

  it("a snapshot keeps each request once, in its furthest status", () => {
    const a = fakeRequest({ id: "dr_a", status: "awaiting_approval", due_at: "2026-12-02T00:00:00Z" });
    const aLater = fakeRequest({ id: "dr_a", status: "unlearning", due_at: "2026-12-02T00:00:00Z" });
    const b = fakeRequest({ id: "dr_b", status: "verifying", due_at: "2026-12-01T00:00:00Z" });
    const bDone = fakeRequest({ id: "dr_b", status: "completed" });
    const view = overviewSnapshot([a, b, aLater] as DeletionRequest[], [bDone] as DeletionRequest[]);
    expect(view.open.map((r) => [r.id, r.status])).toEqual([["dr_a", "unlearning"]]);
    expect(view.recent.map((r) => r.id)).toEqual(["dr_b"]);
  });
});

describe("workflow jobs name the requests they serve", () => {
  it("reads one request or a batch's several", async () => {
    const { servedRequests } = await import("../live/useJobLive");
    expect(servedRequests({ spec: { deletion_request_id: "dr_1" } })).toEqual(["dr_1"]);
    expect(servedRequests({ spec: { deletion_request_id: "dr_1", deletion_request_ids: ["dr_1", "dr_2"] } })).toEqual(["dr_1", "dr_2"]);
    expect(servedRequests({ spec: {} })).toEqual([]);
    expect(servedRequests(undefined)).toEqual([]);
  });
});
