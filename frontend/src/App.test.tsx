import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import { HashRouter } from "react-router";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const check = { ok: true, detail: "sqlite", latency_ms: 1 };
const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** A fake API answering what the overview asks, as a key of the given role. */
function fakeApi(role: string, seen: Request[]) {
  return vi.fn(async (input: Request | string) => {
    const request = input instanceof Request ? input : new Request(input);
    seen.push(request);
    const path = new URL(request.url, "http://x").pathname;
    if (request.headers.get("Authorization") !== "Bearer exp_test_key") return json({ detail: "invalid API key", code: "unauthorized" }, 401);
    if (path.endsWith("/keys/me")) return json({ id: "key_1", name: `a ${role}`, role, prefix: "p", created_at: "2026-01-01T00:00:00Z", created_by: null, revoked_at: null });
    if (path.endsWith("/health")) return json({ status: "ok", database: check, queue: check, storage: check, outbox_backlog: 0 });
    if (path.endsWith("/jobs") || path.endsWith("/models") || path.endsWith("/deletion-requests")) return json({ data: [], count: 0, next_cursor: null });
    if (path.endsWith("/audit/checkpoints")) return json({ data: [], count: 0 });
    return json({ detail: "no such path", code: "not_found" }, 404);
  });
}

async function renderApp(role: string) {
  const seen: Request[] = [];
  vi.stubGlobal("fetch", fakeApi(role, seen));
  sessionStorage.setItem("expunge.apiKey", "exp_test_key");
  vi.resetModules(); // the client and the stored key are read at import
  const { AuthProvider } = await import("./auth");
  const { App } = await import("./App");
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <HashRouter>
        <AuthProvider>
          <App />
        </AuthProvider>
      </HashRouter>
    </QueryClientProvider>,
  );
  await screen.findByText(`a ${role}`);
  await screen.findByText("Database");
  return seen;
}

describe("what a role may not do is not offered", () => {
  beforeEach(() => {
    window.location.hash = "#/";
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    sessionStorage.clear();
  });

  it("a viewer sees no job submission and no keys page", async () => {
    const seen = await renderApp("viewer");
    expect(screen.queryByRole("link", { name: "Submit a job" })).toBeNull();
    expect(screen.queryByRole("link", { name: "API keys" })).toBeNull();
    // Deletion requests are readable by all; the audit log is not.
    expect(screen.getByRole("link", { name: "Deletion requests" })).toBeTruthy();
    expect(screen.queryByRole("link", { name: "Audit log" })).toBeNull();
    expect(seen.some((r) => r.url.includes("/audit/"))).toBe(false);
    expect(seen.every((r) => r.headers.get("Authorization") === "Bearer exp_test_key")).toBe(true);
  });

  it("an engineer may submit jobs but not manage keys", async () => {
    await renderApp("engineer");
    expect(screen.getByRole("link", { name: "Submit a job" })).toBeTruthy();
    expect(screen.queryByRole("link", { name: "API keys" })).toBeNull();
  });

  it("a compliance officer reads the audit log but does not submit jobs", async () => {
    await renderApp("compliance");
    expect(screen.getByRole("link", { name: "Audit log" })).toBeTruthy();
    expect(screen.queryByRole("link", { name: "Submit a job" })).toBeNull();
    expect(await screen.findByText("No checkpoint signed yet.")).toBeTruthy();
    expect(await screen.findByText("No deletion request is open.")).toBeTruthy();
  });

  it("an admin also manages keys", async () => {
    await renderApp("admin");
    expect(screen.getByRole("link", { name: "API keys" })).toBeTruthy();
  });

  it("a key the API stops accepting signs the user out with the API's reason", async () => {
    await renderApp("admin");
    const { api } = await import("./api/client");
    vi.stubGlobal("fetch", vi.fn(async () => json({ detail: "API key revoked", code: "unauthorized" }, 401)));
    // openapi-fetch keeps the fetch it was created with; pass the new one per call.
    await api.GET("/api/v1/health", { fetch: globalThis.fetch });
    expect(await screen.findByText("Signed out: API key revoked")).toBeTruthy();
    expect(sessionStorage.getItem("expunge.apiKey")).toBeNull();
    expect(screen.getByLabelText("API key")).toBeTruthy();
  });
});
