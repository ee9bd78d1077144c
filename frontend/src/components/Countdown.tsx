import { useEffect, useState, type ReactNode } from "react";

import { deadline } from "../api/deletion";
import { utcText } from "./Time";

/** Re-render every `ms` so countdowns move while the page is open. */
export function useNow(ms = 30_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** A request's deadline as a countdown; overdue in red, due soon flagged; UTC on hover. */
export function Countdown({ dueAt, status, now }: { dueAt: string; status: string; now?: number }): ReactNode {
  const ticking = useNow();
  const d = deadline(dueAt, status, now ?? ticking);
  if (d.tone === "closed") return <span className="muted">—</span>;
  return (
    <span className={`countdown countdown-${d.tone}`} role="timer" title={`Due ${utcText(dueAt)}`} aria-label={d.label}>
      {d.tone === "overdue" && <span aria-hidden="true">▲ </span>}
      {d.tone === "soon" && <span aria-hidden="true">● </span>}
      {d.text}
    </span>
  );
}
