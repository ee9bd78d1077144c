import { fireEvent, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { cleanupPage, fakeRequest, json, renderPage } from "../test/harness";
import { allowedActions } from "./DeletionRequestDetail";

const load = async () => (await import("./DeletionRequestDetail")).DeletionRequestDetail;
const timeline = [
  { seq: 4, at: "2026-11-01T10:00:00.000001+00:00", actor: "key_filer", action: "deletion_request.received", payload: { legal_basis: "gdpr_art17" }, hash: "a".repeat(64) },
  { seq: 5, at: "2026-11-01T10:00:00.000002+00:00", actor: "system", action: "deletion_request.planned", payload: { items: 1 }, hash: "b".repeat(64) },
];

function api(request: ReturnType<typeof fakeRequest>, calls: string[] = []) {
  return (r: Request, url: URL) => {
    const p = url.pathname;
    calls.push(`${r.method} ${p}`);
    if (p.endsWith("/timeline")) return json(timeline);
    if (p.endsWith("/approve")) return json({ ...request, status: "unlearning", approved_by: "key_me", allowed_actions: ["extend", "advance"] });
    if (p.endsWith("/reject")) return json({ ...request, status: "rejected", reason: "not our data", allowed_actions: [] });
    if (p.endsWith(`/deletion-requests/${request.id}`)) return json(request);
    if (p.endsWith("/datasets") || p.endsWith("/models")) return json({ data: [], count: 0, next_cursor: null });
    return undefined;
  };
}

describe("who may decide on a request", () => {
  // The actions are the server's allowed_actions (from its states table and the key's
  // role); the page adds only the notes that say why one is missing.
  const r = { status: "awaiting_approval" as const, extended: false, allowed_actions: ["approve", "reject", "cancel", "extend"] };
  it("offers what the server allows, in its order, and tells the filer why approve is missing", () => {
    expect(allowedActions(r, "compliance").actions).toEqual(["approve", "reject", "cancel", "extend"]);
    const filer = allowedActions({ ...r, allowed_actions: ["reject", "cancel", "extend"] }, "compliance");
    expect(filer.actions).toEqual(["reject", "cancel", "extend"]);
    expect(filer.notes[0]).toMatch(/You filed this request/);
  });

  it("never adds an action the server did not list, and drops names it does not know", () => {
    expect(allowedActions({ ...r, allowed_actions: ["cancel", "teleport"] }, "admin").actions).toEqual(["cancel"]);
    expect(allowedActions({ ...r, status: "unlearning", allowed_actions: [] }, "admin").actions).toEqual([]);
  });

  it("offers nothing to engineers and viewers, and says why", () => {
    for (const role of ["engineer", "viewer"]) {
      const a = allowedActions({ ...r, allowed_actions: [] }, role);
      expect(a.actions).toEqual([]);
      expect(a.notes[0]).toMatch(/compliance or admin role/);
    }
  });

  it("explains a used extension and a failed request", () => {
    const extended = allowedActions({ ...r, extended: true, allowed_actions: ["approve", "reject", "cancel"] }, "admin");
    expect(extended.actions).not.toContain("extend");
    expect(extended.notes.join(" ")).toMatch(/already extended once/);
    expect(allowedActions({ ...r, status: "completed", allowed_actions: [] }, "admin")).toEqual({ actions: [], notes: [] });
    const failed = allowedActions({ ...r, status: "failed", allowed_actions: ["retry"] }, "compliance");
    expect(failed.actions).toEqual(["retry"]);
    expect(failed.notes.join(" ")).toMatch(/stay blocked.*then retry/);
  });
});

describe("deletion request page", () => {
  afterEach(cleanupPage);

  it("shows the timeline, blast radius and plan, and tells the filer why they cannot approve", async () => {
    const request = fakeRequest({ allowed_actions: ["reject", "cancel", "extend"] });
    await renderPage({ role: "compliance", keyId: "key_filer", path: "/deletion-requests/dr_0001", route: "/deletion-requests/:requestId", load, handler: api(request) });
    expect(await screen.findByText(/You filed this request, so you cannot approve it/)).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Approve" })).toBeNull();
    expect(screen.getByRole("button", { name: "Reject…" })).toBeTruthy();
    expect(await screen.findByText("planned")).toBeTruthy();
    expect(screen.getByText(/audit #5/)).toBeTruthy();
    expect(screen.getByTestId("plan-total").textContent).toContain("12.5 s");
    expect(screen.getByText("finetune")).toBeTruthy();
    expect(screen.getByText(/The signed certificate is issued when the request completes/)).toBeTruthy();
  });

  it("shows each attempt's price against the retrain and the plan's choice", async () => {
    const cost = { method: "finetune", estimate_fraction: 0.2222, p_fail: 0.8333, verdicts: 4, failures: 4, history: "model", expected_fraction: 1.0556, max_cost_fraction: 0.5, choice: "exact", reason: "r" };
    const request = fakeRequest({
      plan: [{ item_id: "dri_1", model_version_id: "mv_1", model_id: "mdl_1", method: "retrain", exact: true, fallback: null, estimated_seconds: 62.5, retrain_seconds: 62.5, note: "more than it saves", cost }],
    });
    await renderPage({ role: "viewer", keyId: "key_v", path: "/deletion-requests/dr_0001", route: "/deletion-requests/:requestId", load, handler: api(request) });
    const line = (await screen.findByTestId("plan-cost")).textContent ?? "";
    expect(line).toContain("finetune 0.22× a retrain");
    expect(line).toContain("p_fail 0.83 (4 of 4 past verdicts on this model)");
    expect(line).toContain("exact path");
    expect(screen.getByText("more than it saves")).toBeTruthy();
  });

  it("lets a second officer approve, and reject only with a reason", async () => {
    const request = fakeRequest({ allowed_actions: ["approve", "reject", "cancel", "extend"] });
    const calls: string[] = [];
    await renderPage({ role: "compliance", keyId: "key_other", path: "/deletion-requests/dr_0001", route: "/deletion-requests/:requestId", load, handler: api(request, calls) });
    expect(await screen.findByRole("button", { name: "Approve" })).toBeTruthy();
    fireEvent.click(await screen.findByRole("button", { name: "Reject…" }));
    const submit = screen.getByRole("button", { name: "Reject request" }) as HTMLButtonElement;
    expect(submit.disabled).toBe(true);
    fireEvent.change(screen.getByLabelText(/Reason for rejecting/), { target: { value: "not our data" } });
    fireEvent.click(submit);
    await waitFor(() => expect(calls).toContain("POST /api/v1/deletion-requests/dr_0001/reject"));
    expect(await screen.findByText("not our data")).toBeTruthy();
  });

  it("shows exactly the buttons the server allows, whatever the status suggests", async () => {
    const request = fakeRequest({ allowed_actions: ["cancel"] });
    await renderPage({ role: "admin", keyId: "key_other", path: "/deletion-requests/dr_0001", route: "/deletion-requests/:requestId", load, handler: api(request) });
    const group = await screen.findByRole("group", { name: "Decisions" });
    expect([...group.querySelectorAll("button")].map((b) => b.textContent)).toEqual(["Cancel request"]);
  });

  it("shows a viewer no decisions, and an unknown id as the API's 404", async () => {
    const request = fakeRequest();
    await renderPage({ role: "viewer", path: "/deletion-requests/dr_0001", route: "/deletion-requests/:requestId", load, handler: api(request) });
    expect(await screen.findByText(/needs the compliance or admin role/)).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Reject…" })).toBeNull();
    cleanupPage();
    await renderPage({ role: "admin", path: "/deletion-requests/dr_nope", route: "/deletion-requests/:requestId", load, handler: () => json({ detail: "deletion request dr_nope not found", code: "not_found" }, 404) });
    const alerts = await screen.findAllByRole("alert");
    expect(alerts.some((a) => /deletion request dr_nope not found/.test(a.textContent ?? ""))).toBe(true);
  });
});

describe("a closed request's scope", () => {
  afterEach(cleanupPage);

  it("shows the salted commitments, not the ids, once the API has redacted them", async () => {
    const commitment = "c0ffee".repeat(10) + "abcd";
    const request = fakeRequest({ status: "rejected", scope: { subject_ids: [], redacted: true, count: 1 }, scope_commitments: [commitment] });
    await renderPage({ role: "viewer", path: "/deletion-requests/dr_0001", route: "/deletion-requests/:requestId", load, handler: api(request) });
    const scope = await screen.findByTestId("scope-redacted");
    expect(scope.textContent).toContain("subject: 1 salted commitment(s) (c0ffeec0ffee…)");
    expect(scope.getAttribute("title")).toBe(commitment);
  });
});

describe("the verification summary", () => {
  it("says what was checked, what failed, and what a role could not check", async () => {
    const { render } = await import("@testing-library/react");
    const { Checks } = await import("./DeletionRequestDetail");
    const signature = { name: "Signature", ok: true, detail: "valid Ed25519 signature by key k" };
    const { rerender } = render(<Checks checks={[signature, { name: "Audit log", ok: false, skipped: true, detail: "not checked: needs the role" }]} />);
    expect(screen.getByTestId("verify-result").textContent).toContain("✓ Signature verified (audit log not checked)");
    rerender(<Checks checks={[signature, { name: "Steps in the log", ok: false, detail: "not proven: position(s) 4" }]} />);
    expect(screen.getByTestId("verify-result").textContent).toContain("✗ Not verified");
    expect(screen.getByTestId("verify-result").className).toContain("bad");
  });
});
