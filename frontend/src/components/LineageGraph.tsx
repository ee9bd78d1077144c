import type { ReactNode } from "react";

import type { Lineage, ModelVersion } from "../api/types";

const W = 190;
const H = 58;
const GAP_X = 56;
const GAP_Y = 26;
const PAD = 12;

type Node = { key: string; col: number; row: number; kind: "version" | "current" | "job" | "data"; status?: string; title: string; sub: string; href?: string; label: string };
type Edge = { from: string; to: string };

export function lineageLayout(lineage: Lineage, datasetName?: string): { nodes: Node[]; edges: Edge[] } {
  const nodes: Node[] = [];
  const edges: Edge[] = [];
  const vnode = (v: ModelVersion, col: number, row: number, current = false): Node => ({
    key: v.id,
    col,
    row,
    kind: current ? "current" : "version",
    status: v.status,
    title: `v${v.version} · ${v.status}`,
    sub: `${v.source} · ${v.sha256.slice(0, 10)}`,
    href: current ? undefined : `#/versions/${v.id}`,
    label: `${current ? "This version" : "Version"} ${v.version}, ${v.status}, ${v.source}`,
  });

  // Oldest ancestor on the left; the API lists the parent first.
  const ancestors = [...lineage.ancestors].reverse();
  ancestors.forEach((v, i) => {
    nodes.push(vnode(v, i, 0));
    if (i > 0) edges.push({ from: ancestors[i - 1].id, to: v.id });
  });
  let col = ancestors.length;
  const parent = ancestors[ancestors.length - 1];
  if (lineage.job) {
    const job = lineage.job;
    nodes.push({
      key: job.id,
      col,
      row: 0,
      kind: "job",
      status: job.state,
      title: `${job.kind}${job.method ? ` · ${job.method}` : ""} job`,
      sub: `${job.state} · ${job.id.slice(-10)}`,
      href: `#/jobs/${job.id}`,
      label: `${job.kind} job ${job.id}, ${job.state}`,
    });
    if (parent) edges.push({ from: parent.id, to: job.id });
    if (lineage.training_set) {
      const ts = lineage.training_set;
      nodes.push({
        key: "training-set",
        col,
        row: 1,
        kind: "data",
        title: `${datasetName ?? "dataset"} v${ts.dataset_version}`,
        sub: `${ts.count.toLocaleString()} ${ts.split} samples`,
        href: `#/datasets/${ts.dataset_id}?version=${ts.dataset_version}`,
        label: `Training set: ${datasetName ?? ts.dataset_id} version ${ts.dataset_version}, ${ts.count} ${ts.split} samples`,
      });
      edges.push({ from: "training-set", to: job.id });
    }
    edges.push({ from: job.id, to: lineage.version.id });
    col++;
  } else if (parent) {
    edges.push({ from: parent.id, to: lineage.version.id });
  }
  nodes.push(vnode(lineage.version, col, 0, true));
  lineage.children.forEach((child, i) => {
    nodes.push(vnode(child, col + 1, i));
    edges.push({ from: lineage.version.id, to: child.id });
  });
  return { nodes, edges };
}

const x = (n: Node) => PAD + n.col * (W + GAP_X);
const y = (n: Node) => PAD + n.row * (H + GAP_Y);

/** Ancestors → (job + training set) → this version → children, as an SVG graph. */
export function LineageGraph({ lineage, datasetName }: { lineage: Lineage; datasetName?: string }): ReactNode {
  const { nodes, edges } = lineageLayout(lineage, datasetName);
  const byKey = new Map(nodes.map((n) => [n.key, n]));
  const width = PAD * 2 + (Math.max(...nodes.map((n) => n.col)) + 1) * (W + GAP_X) - GAP_X;
  const height = PAD * 2 + (Math.max(...nodes.map((n) => n.row)) + 1) * (H + GAP_Y) - GAP_Y;
  return (
    <div className="lineage" role="group" aria-label="Lineage graph">
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#64748b" />
          </marker>
        </defs>
        {edges.map((e) => {
          const a = byKey.get(e.from)!;
          const b = byKey.get(e.to)!;
          const vertical = a.col === b.col;
          const [x1, y1] = vertical ? [x(a) + W / 2, y(a)] : [x(a) + W, y(a) + H / 2];
          const [x2, y2] = vertical ? [x(b) + W / 2, y(b) + H] : [x(b), y(b) + H / 2];
          const d = vertical ? `M${x1},${y1} L${x2},${y2 + 2}` : `M${x1},${y1} C${x1 + GAP_X / 2},${y1} ${x2 - GAP_X / 2},${y2} ${x2 - 2},${y2}`;
          return <path key={`${e.from}-${e.to}`} d={d} className="edge" markerEnd="url(#arrow)" />;
        })}
        {nodes.map((n) => {
          const body = (
            <g transform={`translate(${x(n)},${y(n)})`} className={`node node-${n.kind} status-${n.status ?? "none"}`}>
              <title>{n.label}</title>
              <rect width={W} height={H} rx={8} />
              <text x={12} y={24} className="node-title">
                {n.title}
              </text>
              <text x={12} y={44} className="node-sub">
                {n.sub}
              </text>
            </g>
          );
          return n.href ? (
            <a key={n.key} href={n.href} aria-label={n.label}>
              {body}
            </a>
          ) : (
            <g key={n.key} aria-label={n.label} role="img">
              {body}
            </g>
          );
        })}
      </svg>
    </div>
  );
}
