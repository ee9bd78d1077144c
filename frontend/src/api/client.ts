/**
 * The typed API client: openapi-fetch over the paths generated from openapi.json, plus
 * the signed-in key as a Bearer header on every request.
 */
import createClient, { type Middleware } from "openapi-fetch";

import { ApiError, toApiError } from "./errors";
import type { paths } from "./schema";

export const API_BASE = "";

let currentKey: string | null = null;
let onUnauthorized: ((message: string) => void) | null = null;

export function setApiKey(key: string | null): void {
  currentKey = key;
}

export function setUnauthorizedHandler(handler: ((message: string) => void) | null): void {
  onUnauthorized = handler;
}

export function authHeaders(key: string | null = currentKey): Record<string, string> {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

const auth: Middleware = {
  onRequest({ request }) {
    if (currentKey && !request.headers.has("Authorization")) {
      request.headers.set("Authorization", `Bearer ${currentKey}`);
    }
    return request;
  },
  async onResponse({ request, response }) {
    // A key that stops working (revoked) ends the session with the server's reason.
    if (response.status === 401 && currentKey && request.headers.get("Authorization") === `Bearer ${currentKey}`) {
      const body: unknown = await response.clone().json().catch(() => null);
      onUnauthorized?.(toApiError(body, response).message);
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: API_BASE });
api.use(auth);

type Result<T> = { data?: T; error?: unknown; response: Response };

/** Await an openapi-fetch call and return its data, or throw ApiError with the API's message. */
export async function unwrap<T>(call: Promise<Result<T>>): Promise<T> {
  let result: Result<T>;
  try {
    result = await call;
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(0, `Could not reach the API (${error instanceof Error ? error.message : String(error)}).`);
  }
  if (result.error !== undefined || !result.response.ok) {
    throw toApiError(result.error, result.response);
  }
  return result.data as T;
}

/**
 * GET a URL the API handed out (e.g. a sample's image_url) with the key attached.
 * Such URLs come from responses, not from paths we write, so they cannot drift.
 */
export async function fetchWithKey(url: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders())) headers.set(k, v);
  const response = await fetch(url, { ...init, headers });
  if (!response.ok) {
    const body: unknown = await response.json().catch(() => null);
    throw toApiError(body, response);
  }
  return response;
}

/** Save a Blob as a file through a temporary object URL (downloads need the header too). */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
