import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { cleanupPage, json, renderPage, type Handler } from "../test/harness";

const load = async () => (await import("./Webhooks")).Webhooks;
const URL_A = "https://hooks.example.com/expunge";

function fakeHook(over: Record<string, unknown> = {}) {
  return { id: "wh_1", url: URL_A, events: ["deletion_request.completed"], description: "", active: true, created_at: "2026-11-01T10:00:00Z", created_by: "key_me", ...over };
}

function fakeDelivery(over: Record<string, unknown> = {}) {
  return {
    id: "whd_1",
    webhook_id: "wh_1",
    event: "deletion_request.completed",
    payload: {},
    state: "delivered",
    attempts: 1,
    next_attempt_at: "2026-11-01T10:00:00Z",
    last_status: 200,
    last_error: null,
    created_at: "2026-11-01T10:00:00Z",
    delivered_at: "2026-11-01T10:00:01Z",
    ...over,
  };
}

const list = (data: unknown[]) => json({ data, count: data.length });
const calls = (seen: Request[], method: string, suffix: string) => seen.filter((r) => r.method === method && new URL(r.url).pathname.endsWith(suffix));

async function render(handler: Handler, role = "compliance") {
  return renderPage({ role, path: "/webhooks", route: "/webhooks", load, handler });
}

describe("webhooks page", () => {
  afterEach(cleanupPage);

  it("shows a new webhook's secret once, then hides it", async () => {
    const bodies: unknown[] = [];
    const hooks: unknown[] = [];
    const { seen } = await render(async (r, url) => {
      if (url.pathname.endsWith("/webhooks") && r.method === "POST") {
        const body = (await r.json()) as { events: string[] };
        bodies.push(body);
        const hook = fakeHook({ events: body.events });
        hooks.push(hook);
        return json({ ...hook, secret: "whsec_first" }, 201);
      }
      if (url.pathname.endsWith("/webhooks")) return list(hooks);
      return undefined;
    });
    expect(await screen.findByText("No webhooks.")).toBeTruthy();
    const form = screen.getByRole("form", { name: "Register a webhook" });
    fireEvent.change(within(form).getByLabelText(/^Url/), { target: { value: URL_A } });
    for (const event of ["deletion_request.completed", "deletion_request.failed"]) fireEvent.click(within(form).getByLabelText(event));
    fireEvent.click(within(form).getByRole("button", { name: "Create webhook" }));
    const card = await screen.findByRole("status");
    expect(card.textContent).toContain("shown only once");
    expect(within(card).getByText("whsec_first")).toBeTruthy();
    expect(bodies[0]).toMatchObject({ url: URL_A, events: ["deletion_request.completed", "deletion_request.failed"], active: true });
    expect(calls(seen, "POST", "/webhooks")).toHaveLength(1);
    // The list reloads with the new webhook; its secret is in no row.
    const table = await screen.findByRole("table", { name: "Webhooks" });
    expect(within(table).getByText("deletion_request.failed")).toBeTruthy();
    fireEvent.click(within(card).getByRole("button", { name: "I have stored it" }));
    expect(screen.queryByText("whsec_first")).toBeNull();
    expect(screen.queryByRole("status")).toBeNull();
  });

  it("rotates a secret only after a confirmation saying the old one stops at once", async () => {
    const { seen } = await render((_r, url) => {
      if (url.pathname.endsWith("/rotate-secret")) return json({ ...fakeHook(), secret: "whsec_rotated" });
      if (url.pathname.endsWith("/webhooks")) return list([fakeHook()]);
      return undefined;
    });
    fireEvent.click(await screen.findByRole("button", { name: `Rotate secret of ${URL_A}` }));
    expect(screen.getByText(/The old secret stops working at once/)).toBeTruthy();
    expect(calls(seen, "POST", "/rotate-secret")).toHaveLength(0);
    // "No" goes back without rotating.
    fireEvent.click(screen.getByRole("button", { name: "No" }));
    expect(screen.queryByText(/stops working at once/)).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: `Rotate secret of ${URL_A}` }));
    fireEvent.click(screen.getByRole("button", { name: "Yes, rotate" }));
    const card = await screen.findByRole("status");
    expect(card.textContent).toContain(`New secret for ${URL_A}`);
    expect(within(card).getByText("whsec_rotated")).toBeTruthy();
    expect(calls(seen, "POST", "/webhooks/wh_1/rotate-secret")).toHaveLength(1);
  });

  it("lists deliveries and retries one that gave up", async () => {
    let retried = false;
    const { seen } = await render((r, url) => {
      if (url.pathname.endsWith("/retry") && r.method === "POST") {
        retried = true;
        return json(fakeDelivery({ id: "whd_2", state: "pending", attempts: 0, last_status: 503, delivered_at: null }));
      }
      if (url.pathname.endsWith("/deliveries")) {
        return list([
          fakeDelivery({ id: "whd_2", state: retried ? "pending" : "failed", attempts: retried ? 0 : 8, last_status: 503, last_error: "HTTP 503 from receiver", delivered_at: null }),
          fakeDelivery(),
        ]);
      }
      if (url.pathname.endsWith("/webhooks")) return list([fakeHook()]);
      return undefined;
    });
    const toggle = await screen.findByRole("button", { name: `Deliveries of ${URL_A}` });
    expect(toggle.getAttribute("aria-expanded")).toBe("false");
    fireEvent.click(toggle);
    expect(toggle.getAttribute("aria-expanded")).toBe("true");
    const table = await screen.findByRole("table", { name: `Deliveries to ${URL_A}, newest first` });
    const [, failed, delivered] = within(table).getAllByRole("row");
    expect(failed.textContent).toContain("failed");
    expect(failed.textContent).toContain("gave up");
    expect(failed.textContent).toContain("HTTP 503 from receiver");
    // Only the delivery that gave up offers a retry.
    expect(within(delivered).queryByRole("button")).toBeNull();
    fireEvent.click(within(failed).getByRole("button", { name: "Retry delivery whd_2" }));
    await waitFor(() => expect(calls(seen, "POST", "/webhooks/wh_1/deliveries/whd_2/retry")).toHaveLength(1));
    // The list is read again: the delivery is pending, with no retry left to offer.
    await waitFor(() => expect(within(table).queryByRole("button", { name: /Retry/ })).toBeNull());
    expect(within(table).getAllByText("pending")).toHaveLength(1);
  });

  it("deactivates with a PATCH and deletes only after a confirmation", async () => {
    const patches: unknown[] = [];
    const { seen } = await render(async (r, url) => {
      if (url.pathname.endsWith("/webhooks/wh_1") && r.method === "PATCH") {
        patches.push(await r.json());
        return json(fakeHook({ active: false }));
      }
      if (url.pathname.endsWith("/webhooks/wh_1") && r.method === "DELETE") return new Response(null, { status: 204 });
      if (url.pathname.endsWith("/webhooks")) return list([fakeHook()]);
      return undefined;
    });
    fireEvent.click(await screen.findByRole("button", { name: `Deactivate ${URL_A}` }));
    await waitFor(() => expect(patches).toEqual([{ active: false }]));
    fireEvent.click(screen.getByRole("button", { name: `Delete ${URL_A}` }));
    expect(screen.getByText(/and its delivery history\?/)).toBeTruthy();
    expect(calls(seen, "DELETE", "/webhooks/wh_1")).toHaveLength(0);
    fireEvent.click(screen.getByRole("button", { name: "Yes, delete" }));
    await waitFor(() => expect(calls(seen, "DELETE", "/webhooks/wh_1")).toHaveLength(1));
  });

  it.each(["viewer", "engineer"])("explains to a %s key why it cannot manage webhooks", async (role) => {
    const { seen } = await render(() => list([fakeHook()]), role);
    const why = await screen.findByText(new RegExp(`role is\\s+${role}`));
    expect(why.textContent).toContain("Only compliance officers and admins manage webhooks");
    expect(screen.queryByRole("alert")).toBeNull();
    expect(screen.queryByRole("form")).toBeNull();
    expect(seen.some((r) => new URL(r.url).pathname.includes("/webhooks"))).toBe(false);
  });
});
