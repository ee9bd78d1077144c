import type { ReactNode } from "react";

export const TERMINAL_STATES = new Set(["succeeded", "failed", "cancelled"]);

export function StateBadge({ state }: { state: string }): ReactNode {
  return <span className={`badge state-${state}`}>{state}</span>;
}

export function Progress({ value, label }: { value: number; label?: string }): ReactNode {
  const pct = Math.round(Math.min(Math.max(value, 0), 1) * 1000) / 10;
  return (
    <span className="progress" title={`${pct}%`}>
      <progress max={1} value={value} aria-label={label ?? "Progress"} aria-valuetext={`${pct}%`} />
      <span className="progress-text">{pct}%</span>
    </span>
  );
}

export function Mono({ children, title }: { children: ReactNode; title?: string }): ReactNode {
  return (
    <code className="mono" title={title}>
      {children}
    </code>
  );
}

/** A long id shortened for tables, full value on hover. */
export function ShortId({ id }: { id: string | null | undefined }): ReactNode {
  if (!id) return <span className="muted">—</span>;
  const short = id.length > 16 ? `${id.slice(0, 4)}…${id.slice(-8)}` : id;
  return <Mono title={id}>{short}</Mono>;
}
