import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { unwrap } from "../api/client";
import { ApiError, messageFromBody } from "../api/errors";
import { ErrorMessage, QueryView } from "./States";

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

describe("API errors are shown with the API's own message", () => {
  it("takes `detail`, the validation `message`, or the list of validation errors", () => {
    expect(messageFromBody({ detail: "job j1 not found", code: "not_found" }, 404)).toBe("job j1 not found");
    expect(messageFromBody({ detail: [{ loc: ["body", "params", "lr"], msg: "too small" }], message: "params.lr: too small" }, 422)).toBe("params.lr: too small");
    expect(messageFromBody({ detail: [{ loc: ["body", "epochs"], msg: "bad" }] }, 422)).toBe("epochs: bad");
    expect(messageFromBody(null, 502, "Bad Gateway")).toBe("HTTP 502 Bad Gateway");
  });

  it("unwrap turns a failed call into an ApiError with status, code and field", async () => {
    const response = json(409, { detail: "job j1 is already succeeded", code: "conflict", field: null });
    const error = await unwrap(Promise.resolve({ error: await response.clone().json(), response })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 409, code: "conflict", message: "job j1 is already succeeded" });
    const offline = await unwrap(Promise.reject(new TypeError("Failed to fetch"))).catch((e: unknown) => e);
    expect(offline).toMatchObject({ status: 0, message: "Could not reach the API (Failed to fetch)." });
  });

  it("ErrorMessage renders the message, status and a retry", () => {
    render(<ErrorMessage error={new ApiError(403, "role 'viewer' may not do this", "forbidden")} title="Could not cancel" retry={() => undefined} />);
    const alert = screen.getByRole("alert");
    expect(alert.textContent).toContain("Could not cancel (HTTP 403, forbidden)");
    expect(alert.textContent).toContain("role 'viewer' may not do this");
    expect(screen.getByRole("button", { name: "Try again" })).toBeTruthy();
  });

  it("QueryView shows loading, then the error instead of a blank page", () => {
    const base = { data: undefined, refetch: () => undefined };
    const { rerender } = render(<QueryView query={{ ...base, error: null, isPending: true }} what="jobs">{() => "content"}</QueryView>);
    expect(screen.getByRole("status").textContent).toContain("Loading jobs");
    rerender(<QueryView query={{ ...base, error: new ApiError(503, "the database is unavailable; retry shortly"), isPending: false }} what="jobs">{() => "content"}</QueryView>);
    expect(screen.getByRole("alert").textContent).toContain("the database is unavailable; retry shortly");
    expect(screen.queryByText("content")).toBeNull();
  });
});
