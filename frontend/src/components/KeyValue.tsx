import type { ReactNode } from "react";

/** A definition list of facts; values may be nodes. */
export function Facts({ items }: { items: [string, ReactNode][] }): ReactNode {
  return (
    <dl className="facts">
      {items.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v ?? <span className="muted">—</span>}</dd>
        </div>
      ))}
    </dl>
  );
}

export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(5).replace(/\.?0+$/, "");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** A flat object (params, metrics) as a two-column table. */
export function ObjectTable({ value, caption }: { value: Record<string, unknown>; caption: string }): ReactNode {
  const entries = Object.entries(value);
  if (!entries.length) return <p className="empty">None.</p>;
  return (
    <table className="table compact">
      <caption className="sr-only">{caption}</caption>
      <tbody>
        {entries.map(([k, v]) => (
          <tr key={k}>
            <th scope="row">
              <code>{k}</code>
            </th>
            <td className="num">{formatValue(v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
