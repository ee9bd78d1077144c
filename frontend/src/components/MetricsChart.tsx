import type { ReactNode } from "react";
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";

import { chartGroups, type Series } from "../live/merge";
import { Empty } from "./States";

const COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2"];

function fmt(v: unknown): string {
  return typeof v === "number" ? (Math.abs(v) >= 1000 || v === 0 ? String(v) : v.toPrecision(4)) : String(v);
}

/** One line chart per metric group, x = training step; redrawn as points arrive. */
export function MetricsCharts({ series, running }: { series: Series; running: boolean }): ReactNode {
  const groups = chartGroups(series);
  if (!groups.length) {
    return <Empty>{running ? "No metrics yet: they appear as the job reports them (a training job reports at each epoch's end)." : "This job reported no metrics over steps."}</Empty>;
  }
  return (
    <div className="charts">
      {groups.map((g) => (
        <figure key={g.title} className="chart" data-chart={g.title} aria-label={`${g.title} by step`}>
          <figcaption>
            {g.title} <span className="muted">({g.rows.length} point{g.rows.length === 1 ? "" : "s"})</span>
          </figcaption>
          <ResponsiveContainer width="100%" height={220}>
            <LineChart data={g.rows} margin={{ top: 8, right: 16, bottom: 4, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" stroke="#e5e7eb" />
              <XAxis dataKey="step" type="number" domain={["dataMin", "dataMax"]} allowDecimals={false} tick={{ fontSize: 12 }} label={{ value: "step", position: "insideBottomRight", offset: -2, fontSize: 11 }} />
              <YAxis tick={{ fontSize: 12 }} width={56} tickFormatter={fmt} domain={["auto", "auto"]} />
              <Tooltip formatter={(v) => fmt(v)} labelFormatter={(s) => `step ${s}`} />
              <Legend wrapperStyle={{ fontSize: 12 }} />
              {g.names.map((name, i) => (
                <Line key={name} type="monotone" dataKey={name} stroke={COLORS[i % COLORS.length]} dot={{ r: 3 }} isAnimationActive={false} connectNulls />
              ))}
            </LineChart>
          </ResponsiveContainer>
        </figure>
      ))}
    </div>
  );
}
