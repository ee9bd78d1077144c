/** Render one page against a fake API, signed in with a key of the given role. */
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ComponentType } from "react";
import { MemoryRouter, Route, Routes } from "react-router";
import { vi } from "vitest";

import { FAMILIES_PATH } from "../api/families";
import { FAMILIES } from "./families";

export const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

export type Handler = (request: Request, url: URL) => Response | undefined | Promise<Response | undefined>;

export async function renderPage({
  role,
  keyId = "key_me",
  path,
  route,
  load,
  handler,
}: {
  role: string;
  keyId?: string;
  path: string;
  route: string;
  load: () => Promise<ComponentType>;
  handler: Handler;
}) {
  const seen: Request[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: Request | string, init?: RequestInit) => {
      const request = input instanceof Request ? input : new Request(new URL(input, "http://x"), init);
      seen.push(request);
      const url = new URL(request.url, "http://x");
      if (url.pathname.endsWith("/keys/me")) {
        return json({ id: keyId, name: `a ${role}`, role, prefix: "p", created_at: "2026-01-01T00:00:00Z", created_by: null, revoked_at: null });
      }
      const answer = await handler(request, url);
      if (answer) return answer;
      // Every page may ask for the model families; a test may answer it itself.
      if (url.pathname.endsWith(FAMILIES_PATH)) return json(FAMILIES);
      return json({ detail: `no fake for ${url.pathname}`, code: "not_found" }, 404);
    }),
  );
  sessionStorage.setItem("expunge.apiKey", "exp_test_key");
  vi.resetModules(); // the client and the stored key are read at import
  const { AuthProvider } = await import("../auth");
  const Page = await load();
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const result = render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <AuthProvider>
          <Routes>
            <Route path={route} element={<Page />} />
            <Route path="*" element={<p>elsewhere</p>} />
          </Routes>
        </AuthProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return { ...result, seen };
}

export function cleanupPage(): void {
  vi.unstubAllGlobals();
  sessionStorage.clear();
}

/** A deletion request as the API returns it, with overrides. */
export function fakeRequest(over: Record<string, unknown> = {}) {
  return {
    id: "dr_0001",
    status: "awaiting_approval",
    scope_kind: "subject_ids",
    scope: { subject_ids: ["s12"] },
    scope_commitments: [],
    legal_basis: "gdpr_art17",
    requester_reference: "ticket-1",
    received_at: "2026-11-01T10:00:00Z",
    due_at: "2026-12-01T10:00:00Z",
    overdue: false,
    due_soon: false,
    extended: false,
    extension_reason: null,
    blast_radius: { datasets: { ds_1: 10 }, samples: 10, versions: ["mv_1"], descendants: [], unverifiable_versions: [] },
    plan: [{ item_id: "dri_1", model_version_id: "mv_1", model_id: "mdl_1", method: "finetune", exact: false, fallback: "retrain", estimated_seconds: 12.5, retrain_seconds: 62.5, note: null }],
    reason: null,
    created_at: "2026-11-01T10:00:00Z",
    created_by: "key_filer",
    approved_by: null,
    approved_at: null,
    completed_at: null,
    has_certificate: false,
    items: [],
    allowed_actions: [],
    ...over,
  };
}
