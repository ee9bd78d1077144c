import { useState, type ReactNode } from "react";

/**
 * Cursor paging: the API gives `next_cursor`; going back replays the cursors we came
 * through. Reset it when filters change by passing a new `resetKey`.
 */
export function useCursorPager(resetKey: string) {
  const [state, setState] = useState<{ key: string; stack: (string | undefined)[] }>({ key: resetKey, stack: [undefined] });
  const stack = state.key === resetKey ? state.stack : [undefined];
  return {
    cursor: stack[stack.length - 1],
    page: stack.length,
    next: (cursor: string) => setState({ key: resetKey, stack: [...stack, cursor] }),
    prev: () => setState({ key: resetKey, stack: stack.length > 1 ? stack.slice(0, -1) : stack }),
  };
}

export function Pager({ page, nextCursor, onNext, onPrev, label }: { page: number; nextCursor: string | null | undefined; onNext: (c: string) => void; onPrev: () => void; label: string }): ReactNode {
  if (page === 1 && !nextCursor) return null;
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <button type="button" onClick={onPrev} disabled={page === 1}>
        ← Previous
      </button>
      <span>Page {page}</span>
      <button type="button" onClick={() => nextCursor && onNext(nextCursor)} disabled={!nextCursor}>
        Next →
      </button>
    </nav>
  );
}

/**
 * Pages of a list the API returns whole (keys, dataset versions): the same Pager, over
 * slices of `size` rows.
 */
export function useSlicePager<T>(items: T[], size = 25) {
  const [wanted, setWanted] = useState(1);
  const pages = Math.max(1, Math.ceil(items.length / size));
  const page = Math.min(wanted, pages);
  return {
    rows: items.slice((page - 1) * size, page * size),
    page,
    nextCursor: page < pages ? String(page + 1) : null,
    onNext: () => setWanted(page + 1),
    onPrev: () => setWanted(Math.max(1, page - 1)),
  };
}
