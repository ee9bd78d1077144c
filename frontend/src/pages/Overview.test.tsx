import { screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { cleanupPage, fakeRequest, json, renderPage } from "../test/harness";

const load = async () => (await import("./Overview")).Overview;
const page = (data: unknown[]) => json({ data, count: data.length, next_cursor: null });

describe("overview panels agree with each other", () => {
  afterEach(cleanupPage);

  it("never lists a request as open beside its certificate, even when it completes between two reads", async () => {
    // dr_race completes while the overview reads the lists status by status: the
    // awaiting_approval page still has it, the completed page already has it too.
    const race = fakeRequest({ id: "dr_race" });
    const done = fakeRequest({ id: "dr_race", status: "completed", has_certificate: true, completed_at: "2026-11-02T10:00:00Z" });
    const moving = fakeRequest({ id: "dr_moving", status: "unlearning" });
    const handler = (_r: Request, url: URL) => {
      if (url.pathname.endsWith("/deletion-requests")) {
        const status = url.searchParams.get("status");
        if (status === "awaiting_approval") return page([race, fakeRequest({ id: "dr_moving" })]);
        if (status === "unlearning") return page([moving]);
        if (status === "completed") return page([done]);
        return page([]);
      }
      if (url.pathname.endsWith("/health")) return json({ status: "ok", database: { ok: true, detail: "" }, queue: { ok: true, detail: "" }, storage: { ok: true, detail: "" } });
      if (url.pathname.endsWith("/jobs")) return page([]);
      if (url.pathname.endsWith("/models")) return page([]);
      return undefined;
    };
    await renderPage({ role: "viewer", path: "/", route: "/", load, handler });
    const certificates = await screen.findByTestId("recent-certificates");
    expect(within(certificates).getByRole("link").getAttribute("href")).toBe("/deletion-requests/dr_race");
    const open = await screen.findByRole("table", { name: "Open deletion requests by deadline" });
    expect(within(open).queryByRole("link", { name: "Deletion request dr_race" })).toBeNull();
    // Read under two open statuses while it moved on: shown once, as the further one.
    expect(within(open).getAllByRole("link", { name: "Deletion request dr_moving" })).toHaveLength(1);
    expect(within(open).getByText("unlearning")).toBeTruthy();
  });
});
