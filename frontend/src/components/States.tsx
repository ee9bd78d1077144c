import type { ReactNode } from "react";

import { ApiError, describeError } from "../api/errors";

export function Loading({ what = "Loading" }: { what?: string }): ReactNode {
  return (
    <p className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {what}…
    </p>
  );
}

/** An API error with the server's own message; never a blank page. */
export function ErrorMessage({ error, title = "Something went wrong", retry }: { error: unknown; title?: string; retry?: () => void }): ReactNode {
  const status = error instanceof ApiError && error.status ? ` (HTTP ${error.status}${error.code ? `, ${error.code}` : ""})` : "";
  return (
    <div className="error" role="alert">
      <strong>
        {title}
        {status}
      </strong>
      <p>{describeError(error)}</p>
      {retry && (
        <button type="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }): ReactNode {
  return <p className="empty">{children}</p>;
}

type QueryLike<T> = { data: T | undefined; error: unknown; isPending: boolean; refetch: () => unknown };

/** Loading / error / content for one query. */
export function QueryView<T>({ query, what, children }: { query: QueryLike<T>; what?: string; children: (data: T) => ReactNode }): ReactNode {
  if (query.isPending) return <Loading what={what ? `Loading ${what}` : "Loading"} />;
  if (query.error) return <ErrorMessage error={query.error} title={what ? `Could not load ${what}` : undefined} retry={() => void query.refetch()} />;
  return <>{children(query.data as T)}</>;
}
