import { screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { cleanupPage, fakeRequest, json, renderPage } from "../test/harness";

const load = async () => (await import("./DeletionRequests")).DeletionRequests;
const page = (data: unknown[], next: string | null = null) => json({ data, count: data.length, next_cursor: next });

describe("deletion requests list", () => {
  afterEach(cleanupPage);

  it("shows loading, then the requests with basis, reference and countdowns", async () => {
    let release: (r: Response) => void = () => undefined;
    const soon = new Date(Date.now() + 2 * 86_400_000 + 3_600_000).toISOString();
    const late = new Date(Date.now() - 4 * 86_400_000 - 3_600_000).toISOString();
    await renderPage({
      role: "compliance",
      path: "/deletion-requests",
      route: "/deletion-requests",
      load,
      handler: (_r, url) =>
        url.pathname.endsWith("/deletion-requests")
          ? new Promise((resolve) => {
              release = resolve;
            })
          : undefined,
    });
    expect((await screen.findByRole("status")).textContent).toContain("Loading deletion requests");
    release(page([fakeRequest({ id: "dr_soon", due_at: soon, due_soon: true, requester_reference: "T-1" }), fakeRequest({ id: "dr_late", due_at: late, overdue: true, legal_basis: "ccpa" })], "dr_late"));
    const late_ = await screen.findByLabelText("Deadline passed: overdue by 4 days");
    expect(late_.className).toContain("countdown-overdue");
    expect(screen.getByLabelText("Due soon: 2 days left").className).toContain("countdown-soon");
    expect(screen.getByText("T-1")).toBeTruthy();
    expect(screen.getByText("CCPA")).toBeTruthy();
    expect(screen.getByRole("link", { name: "Deletion request dr_soon" }).getAttribute("href")).toBe("/deletion-requests/dr_soon");
    expect(screen.getByRole("button", { name: "Next →" })).toBeTruthy();
    // A compliance officer may file one.
    expect(await screen.findByRole("link", { name: "File a request" })).toBeTruthy();
  });

  it("filters by status through the API and says when nothing matches", async () => {
    const { seen } = await renderPage({
      role: "viewer",
      path: "/deletion-requests?status=failed",
      route: "/deletion-requests",
      load,
      handler: (_r, url) => (url.pathname.endsWith("/deletion-requests") ? page([]) : undefined),
    });
    expect(await screen.findByText("No request is failed.")).toBeTruthy();
    expect(seen.some((r) => new URL(r.url).searchParams.get("status") === "failed")).toBe(true);
    const filter = screen.getByRole("search", { name: "Filter deletion requests" });
    expect((within(filter).getByLabelText("Status") as HTMLSelectElement).value).toBe("failed");
    // A viewer is not offered filing.
    expect(screen.queryByRole("link", { name: "File a request" })).toBeNull();
  });

  it("shows the API's error instead of a blank page", async () => {
    await renderPage({
      role: "viewer",
      path: "/deletion-requests",
      route: "/deletion-requests",
      load,
      handler: () => json({ detail: "the database is unavailable; retry shortly", code: "unavailable" }, 503),
    });
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("Could not load deletion requests (HTTP 503, unavailable)");
    expect(alert.textContent).toContain("the database is unavailable; retry shortly");
  });
});
