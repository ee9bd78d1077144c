import { fireEvent, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { cleanupPage, json, renderPage } from "../test/harness";

const load = async () => (await import("./Audit")).Audit;
const event = (seq: number) => ({ seq, at: "2026-11-28T20:15:03.123456+00:00", actor: "key_1", action: "job.created", entity_type: "job", entity_id: `job_${seq}`, payload: { i: seq }, payload_raw: null, prev_hash: "0".repeat(64), hash: `${seq}`.padStart(64, "a") });

function fake(report: Record<string, unknown>, events = [event(3), event(2)]) {
  return (_r: Request, url: URL) => {
    const p = url.pathname;
    if (p.endsWith("/audit/events")) return json({ data: events, count: events.length, next_cursor: events.length ? "2" : null });
    if (p.endsWith("/audit/verify")) return json(report);
    if (p.endsWith("/audit/checkpoints")) return json({ data: [], count: 0 });
    if (p.endsWith("/audit/public-key")) return new Response("not a key", { status: 503 });
    return undefined;
  };
}

describe("audit page", () => {
  afterEach(cleanupPage);

  it("lists events with paging, and verify chain reports the first bad position", async () => {
    const report = { ok: false, size: 12, first_bad_seq: 4, reason: "event 4 was altered: its contents do not match its hash", root_hash: null, checkpoints_verified: 0, checkpoints_unverified: 0, signed_size: 0 };
    const { seen } = await renderPage({ role: "compliance", path: "/audit?entity_type=job", route: "/audit", load, handler: fake(report) });
    const table = await screen.findByTestId("audit-events");
    expect(within(table).getByRole("link", { name: "job_3" }).getAttribute("href")).toBe("/jobs/job_3");
    expect(seen.some((r) => new URL(r.url).searchParams.get("entity_type") === "job")).toBe(true);
    fireEvent.click(screen.getByRole("button", { name: "Next →" }));
    await screen.findByText("Page 2");
    expect(seen.some((r) => new URL(r.url).searchParams.get("cursor") === "2")).toBe(true);
    fireEvent.click(screen.getByRole("button", { name: "Verify chain" }));
    const result = await screen.findByTestId("chain-result");
    expect(result.textContent).toContain("Not intact: first bad position 4");
    expect(result.textContent).toContain("event 4 was altered");
    expect(await screen.findByText(/No checkpoint signed yet/)).toBeTruthy();
  });

  it("says when no event matches", async () => {
    await renderPage({ role: "admin", path: "/audit", route: "/audit", load, handler: fake({}, []) });
    expect(await screen.findByText("No events match these filters.")).toBeTruthy();
  });

  it("is not offered to an engineer", async () => {
    const { seen } = await renderPage({ role: "engineer", path: "/audit", route: "/audit", load, handler: fake({}) });
    expect(await screen.findByText("Reading the audit log needs the compliance or admin role.")).toBeTruthy();
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.some((r) => r.url.includes("/audit/"))).toBe(false);
  });
});
