import type { ReactNode } from "react";

/** One (judge, sampler setting) cell of a diffusion evaluation (docs/diffusion.md). */
export type JudgeCell = {
  judge: string;
  sampler: string;
  forget_rate: number;
  forget_ci: [number, number];
  forget_count: number;
  retain_accuracy: number;
  retain_ci: [number, number];
  retain_count: number;
};

type Gaps = { forget_rate: number; retain_accuracy: number };

/** The cells of an evaluation, or null when it has none (a classifier, an older run). */
export function judgeCells(evaluation: unknown): JudgeCell[] | null {
  if (!evaluation || typeof evaluation !== "object") return null;
  const cells = (evaluation as { cells?: unknown }).cells;
  return Array.isArray(cells) && cells.length ? (cells as JudgeCell[]) : null;
}

const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
const interval = ([low, high]: [number, number]) => `${pct(low)}–${pct(high)}`;
const key = (c: JudgeCell) => `${c.judge}\u0000${c.sampler}`;

/** Every judge at every sampler setting, with Wilson 95 % intervals: a verdict passes
 * only if every row does, so the rows are shown, not an average. With the original's
 * evaluation, its retained accuracy in the same cell is shown beside. */
export function JudgeCells({ evaluation, original }: { evaluation: unknown; original?: unknown }): ReactNode {
  const cells = judgeCells(evaluation);
  if (!cells) return null;
  const before = new Map((judgeCells(original) ?? []).map((c) => [key(c), c]));
  const gaps = (evaluation as { disagreement?: { between_judges?: Gaps; between_samplers?: Gaps } }).disagreement;
  return (
    <>
      <table className="table compact">
        <caption>Every judge at every sampler setting (95 % Wilson intervals)</caption>
        <thead>
          <tr>
            <th scope="col">Judge</th>
            <th scope="col">Sampler setting</th>
            <th scope="col">Forget rate</th>
            <th scope="col">Retained accuracy</th>
            {before.size > 0 && <th scope="col">Original retained</th>}
          </tr>
        </thead>
        <tbody>
          {cells.map((c) => (
            <tr key={key(c)}>
              <td>{c.judge}</td>
              <td>{c.sampler}</td>
              <td className="num" title={`${c.forget_count} images`}>
                {pct(c.forget_rate)} <span className="muted small">({interval(c.forget_ci)})</span>
              </td>
              <td className="num" title={`${c.retain_count} images`}>
                {pct(c.retain_accuracy)} <span className="muted small">({interval(c.retain_ci)})</span>
              </td>
              {before.size > 0 && <td className="num">{before.has(key(c)) ? pct(before.get(key(c))!.retain_accuracy) : "—"}</td>}
            </tr>
          ))}
        </tbody>
      </table>
      {gaps?.between_judges && (
        <p className="muted small">
          Largest disagreement between judges on the same images: forget rate {pct(gaps.between_judges.forget_rate)}, retained accuracy{" "}
          {pct(gaps.between_judges.retain_accuracy)}
          {gaps.between_samplers && (
            <>
              ; between sampler settings: {pct(gaps.between_samplers.forget_rate)} and {pct(gaps.between_samplers.retain_accuracy)}
            </>
          )}
          .
        </p>
      )}
    </>
  );
}
