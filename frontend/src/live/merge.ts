/** Pure helpers that fold live job events into what the REST endpoints returned. */
import type { JobEvent, MetricPoint } from "../api/types";

export type Series = Record<string, MetricPoint[]>;

/** Log and state events by id: the REST page and the stream may overlap. */
export function mergeEvents(a: JobEvent[], b: JobEvent[]): JobEvent[] {
  const byId = new Map<number, JobEvent>();
  for (const e of a) byId.set(e.id, e);
  for (const e of b) byId.set(e.id, e);
  return [...byId.values()].sort((x, y) => x.id - y.id);
}

function pointKey(p: MetricPoint): string {
  return `${p.step ?? ""}|${p.value}`;
}

/** Metric series from GET /metrics plus `metric` events, without duplicates, by step. */
export function mergeSeries(base: Series, extra: Series): Series {
  const out: Series = {};
  for (const name of new Set([...Object.keys(base), ...Object.keys(extra)])) {
    const seen = new Map<string, MetricPoint>();
    for (const p of [...(base[name] ?? []), ...(extra[name] ?? [])]) {
      if (!seen.has(pointKey(p))) seen.set(pointKey(p), p);
    }
    out[name] = [...seen.values()].sort((a, b) => (a.step ?? 0) - (b.step ?? 0) || Date.parse(a.at) - Date.parse(b.at));
  }
  return out;
}

export type ChartGroup = { title: string; names: string[]; rows: Record<string, number>[] };

function groupOf(name: string): string {
  const bare = name.split("/").pop() ?? name;
  if (bare.includes("loss")) return "Loss";
  if (bare.includes("acc")) return "Accuracy";
  if (bare === "lr") return "Learning rate";
  return bare;
}

/** Charts to draw: series with steps, grouped (losses together, accuracies together). */
export function chartGroups(series: Series): ChartGroup[] {
  const groups = new Map<string, string[]>();
  for (const [name, points] of Object.entries(series)) {
    if (!points.some((p) => p.step !== null && p.step !== undefined)) continue;
    const g = groupOf(name);
    groups.set(g, [...(groups.get(g) ?? []), name]);
  }
  const order = ["Loss", "Accuracy"];
  return [...groups.entries()]
    .sort(([a], [b]) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b))
    .map(([title, names]) => {
      const byStep = new Map<number, Record<string, number>>();
      for (const name of names) {
        for (const p of series[name]) {
          if (p.step === null || p.step === undefined) continue;
          const row = byStep.get(p.step) ?? { step: p.step };
          row[name] = p.value;
          byStep.set(p.step, row);
        }
      }
      return { title, names: names.sort(), rows: [...byStep.values()].sort((a, b) => a.step - b.step) };
    });
}
