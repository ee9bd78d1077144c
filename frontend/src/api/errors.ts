/** An API failure carrying the server's own message (never a blank page). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  readonly field: string | undefined;
  /** Messages by field path (`params.lr`), from a validation error's list. */
  readonly fields: Record<string, string>;

  constructor(status: number, message: string, code?: string, field?: string, fields: Record<string, string> = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
    this.fields = field && !fields[field] ? { ...fields, [field]: message } : fields;
  }
}

type ValidationItem = { loc?: unknown[]; msg?: string };

/**
 * The message to show for an error body. The API sends `{detail, code, field}`; for
 * validation errors `detail` is a list and `message` a readable summary.
 */
export function messageFromBody(body: unknown, status: number, statusText = ""): string {
  if (body && typeof body === "object") {
    const b = body as { message?: unknown; detail?: unknown };
    if (typeof b.message === "string" && b.message) return b.message;
    if (typeof b.detail === "string" && b.detail) return b.detail;
    if (Array.isArray(b.detail) && b.detail.length) {
      return (b.detail as ValidationItem[])
        .slice(0, 5)
        .map((d) => {
          const loc = (d.loc ?? []).filter((p) => p !== "body").join(".");
          return loc ? `${loc}: ${d.msg ?? "invalid"}` : (d.msg ?? "invalid");
        })
        .join("; ");
    }
  }
  if (typeof body === "string" && body.trim()) return body.trim().slice(0, 500);
  return `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
}

const LOCATIONS = new Set(["body", "query", "path", "header"]);

/** `{ "params.lr": "Input should be greater than 0" }` from FastAPI's validation list. */
export function fieldErrors(body: unknown): Record<string, string> {
  const detail = body && typeof body === "object" ? (body as { detail?: unknown }).detail : undefined;
  if (!Array.isArray(detail)) return {};
  const out: Record<string, string> = {};
  for (const item of detail as ValidationItem[]) {
    const loc = (item.loc ?? []).filter((p, i) => !(i === 0 && LOCATIONS.has(String(p))));
    // Union bodies name the variant first (e.g. "train"); keep the field path after it.
    const path = loc.map(String).join(".");
    if (path && !out[path]) out[path] = item.msg ?? "invalid";
  }
  return out;
}

export function toApiError(body: unknown, response: Response): ApiError {
  const b = (body && typeof body === "object" ? body : {}) as { code?: unknown; field?: unknown };
  return new ApiError(
    response.status,
    messageFromBody(body, response.status, response.statusText),
    typeof b.code === "string" ? b.code : undefined,
    typeof b.field === "string" ? b.field : undefined,
    fieldErrors(body),
  );
}

/** Any thrown value as a sentence for the user. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof TypeError) return `Could not reach the API (${error.message}).`;
  if (error instanceof Error) return error.message;
  return String(error);
}
