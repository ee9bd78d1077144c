/**
 * The views of one evaluated unlearning job, as its evaluation stored them
 * (GET /jobs/{id}/views): class-wise accuracy, confusion matrix, feature map, CKA per
 * layer and the membership attack. Every chart has its numbers in a table next to it,
 * so nothing is mouse-only.
 */
import { useState, type ReactNode } from "react";
import {
  Bar,
  BarChart,
  CartesianGrid,
  Cell,
  Legend,
  Line,
  LineChart,
  ReferenceLine,
  ResponsiveContainer,
  Scatter,
  ScatterChart,
  Tooltip,
  XAxis,
  YAxis,
  ZAxis,
} from "recharts";

import { useJobViews, type FeatureMapPoint, type JobViews } from "../api/compare";
import { ApiError } from "../api/errors";
import { AuthImage } from "../components/AuthImage";
import { ShortId } from "../components/Badges";
import { Empty, ErrorMessage, Loading } from "../components/States";

export const ROLE_LABEL: Record<string, string> = { after: "unlearned", before: "original", reference: "retrained reference" };
export const ROLE_COLOR: Record<string, string> = { after: "#2563eb", before: "#9ca3af", reference: "#059669" };
const CLASS_COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#92400e", "#475569"];
const classColor = (label: number) => CLASS_COLORS[label % CLASS_COLORS.length];

export function pct(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined ? "—" : `${(v * 100).toFixed(digits)} %`;
}

const num = (v: number | null | undefined, digits = 3) => (v === null || v === undefined ? "—" : v.toFixed(digits));

function Choice({ label, value, options, onChange }: { label: string; value: string; options: [string, string][]; onChange: (v: string) => void }): ReactNode {
  return (
    <label>
      {label}{" "}
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        {options.map(([v, text]) => (
          <option key={v} value={v}>
            {text}
          </option>
        ))}
      </select>
    </label>
  );
}

export function JobViewsPanel({ jobId }: { jobId: string }): ReactNode {
  const views = useJobViews(jobId);
  if (views.isPending) return <Loading what="Loading the views" />;
  if (views.error) {
    const missing = views.error instanceof ApiError && views.error.status === 404;
    return <ErrorMessage error={views.error} title={missing ? "No views for this job" : "Could not load the views"} retry={missing ? undefined : () => void views.refetch()} />;
  }
  const v = views.data;
  return (
    <div className="cmp-views">
      <p className="muted">
        Job <ShortId id={v.job_id} />: {v.models.map((r) => ROLE_LABEL[r] ?? r).join(", ")}; {v.counts.forget ?? 0} forget, {v.counts.retain ?? 0} retain (sample), {v.counts.test ?? 0} test samples
        {v.forget_labels?.length ? `; forgotten class${v.forget_labels.length > 1 ? "es" : ""} ${v.forget_labels.join(", ")}` : ""}.
      </p>
      <ClassAccuracy views={v} />
      <Confusion views={v} />
      <FeatureMap views={v} />
      <Cka views={v} />
      <Attack views={v} />
    </div>
  );
}

function ClassAccuracy({ views }: { views: JobViews }): ReactNode {
  const splits = Object.keys(views.class_accuracy);
  const [split, setSplit] = useState(splits.includes("test") ? "test" : (splits[0] ?? "test"));
  const bySplit = views.class_accuracy[split] ?? {};
  const roles = views.models.filter((r) => bySplit[r]);
  const rows = Array.from({ length: views.num_classes }, (_, c) => {
    const row: Record<string, string | number | null> = { cls: String(c) };
    for (const r of roles) row[r] = bySplit[r]?.[c] ?? null;
    return row;
  }).filter((row) => roles.some((r) => row[r] !== null));
  return (
    <section className="card" aria-labelledby="cmp-class-acc">
      <div className="page-head">
        <h3 id="cmp-class-acc">Class-wise accuracy</h3>
        <Choice label="Split" value={split} onChange={setSplit} options={splits.map((s) => [s, s])} />
      </div>
      {rows.length ? (
        <figure className="chart" aria-label={`Accuracy per class on the ${split} set`}>
          <ResponsiveContainer width="100%" height={240}>
            <BarChart data={rows} margin={{ top: 8, right: 16, bottom: 4, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" stroke="#e5e7eb" />
              <XAxis dataKey="cls" tick={{ fontSize: 12 }} label={{ value: "class", position: "insideBottomRight", offset: -2, fontSize: 11 }} />
              <YAxis domain={[0, 1]} tickFormatter={(t: number) => `${Math.round(t * 100)}%`} width={48} tick={{ fontSize: 12 }} />
              <Tooltip formatter={(value) => pct(typeof value === "number" ? value : null)} />
              <Legend wrapperStyle={{ fontSize: 12 }} />
              {roles.map((r) => (
                <Bar key={r} dataKey={r} name={ROLE_LABEL[r] ?? r} fill={ROLE_COLOR[r]} isAnimationActive={false} />
              ))}
            </BarChart>
          </ResponsiveContainer>
        </figure>
      ) : (
        <Empty>No sample of any class in the {split} set.</Empty>
      )}
      <details>
        <summary>Numbers</summary>
        <table className="table">
          <caption className="sr-only">Accuracy per class on the {split} set</caption>
          <thead>
            <tr>
              <th scope="col">class</th>
              <th scope="col" className="num">
                samples
              </th>
              {roles.map((r) => (
                <th key={r} scope="col" className="num">
                  {ROLE_LABEL[r] ?? r}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={String(row.cls)}>
                <th scope="row">{row.cls}</th>
                <td className="num">{views.class_counts[split]?.[Number(row.cls)] ?? 0}</td>
                {roles.map((r) => (
                  <td key={r} className="num">
                    {pct(row[r] as number | null)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </section>
  );
}

function Confusion({ views }: { views: JobViews }): ReactNode {
  const [split, setSplit] = useState("test");
  const [role, setRole] = useState("after");
  if (!views.confusion) {
    return (
      <section className="card" aria-labelledby="cmp-confusion">
        <h3 id="cmp-confusion">Prediction matrix</h3>
        <Empty>Not stored for models with more than 50 classes (see the class-wise accuracy instead).</Empty>
      </section>
    );
  }
  const matrix = views.confusion[split]?.[role] ?? [];
  // Only the classes present in the set, so a forget set of one class is one row.
  const present = matrix.map((row, i) => [i, row.reduce((a, b) => a + b, 0)] as const).filter(([, n]) => n > 0);
  return (
    <section className="card" aria-labelledby="cmp-confusion">
      <div className="page-head">
        <h3 id="cmp-confusion">Prediction matrix</h3>
        <div className="filters">
          <Choice label="Split" value={split} onChange={setSplit} options={[["test", "test"], ["forget", "forget"]]} />
          <Choice label="Model" value={role} onChange={setRole} options={views.models.map((r) => [r, ROLE_LABEL[r] ?? r])} />
        </div>
      </div>
      {present.length ? (
        <div className="cmp-scroll">
          <table className="table cmp-heatmap">
            <caption>
              Rows: true class; columns: predicted class ({ROLE_LABEL[role] ?? role} model, {split} set). Shade: share of the row.
            </caption>
            <thead>
              <tr>
                <th scope="col">true \ predicted</th>
                {matrix.map((_, j) => (
                  <th key={j} scope="col" className="num">
                    {j}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {present.map(([i, total]) => (
                <tr key={i}>
                  <th scope="row">{i}</th>
                  {matrix[i].map((count, j) => {
                    const share = total ? count / total : 0;
                    return (
                      <td
                        key={j}
                        className="num"
                        title={`true ${i} → predicted ${j}: ${count} (${pct(share)})`}
                        style={{ background: `rgba(${i === j ? "5, 150, 105" : "220, 38, 38"}, ${share.toFixed(3)})`, color: share > 0.55 ? "#fff" : undefined }}
                      >
                        {count}
                      </td>
                    );
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <Empty>No sample in the {split} set.</Empty>
      )}
    </section>
  );
}

function MapChart({ title, points, role }: { title: string; points: FeatureMapPoint[]; role: "before" | "after" }): ReactNode {
  const xy = (p: FeatureMapPoint) => {
    const c = p[role];
    return c && c[0] !== null && c[1] !== null ? { x: c[0], y: c[1], label: p.label, id: p.sample_id } : null;
  };
  const test = points.filter((p) => !p.forget).map(xy).filter((p) => p !== null);
  const forget = points.filter((p) => p.forget).map(xy).filter((p) => p !== null);
  return (
    <figure className="chart" aria-label={`Feature map, ${title}: ${forget.length} forget and ${test.length} test points`}>
      <figcaption>{title}</figcaption>
      <ResponsiveContainer width="100%" height={280}>
        <ScatterChart margin={{ top: 8, right: 8, bottom: 4, left: 0 }}>
          <CartesianGrid strokeDasharray="3 3" stroke="#e5e7eb" />
          <XAxis dataKey="x" type="number" name="PC 1" tick={{ fontSize: 11 }} domain={["auto", "auto"]} />
          <YAxis dataKey="y" type="number" name="PC 2" tick={{ fontSize: 11 }} width={44} domain={["auto", "auto"]} />
          <ZAxis range={[14, 14]} />
          <Tooltip formatter={(value) => (typeof value === "number" ? value.toFixed(2) : String(value))} />
          <Scatter name="test samples (colour: class)" data={test} fill="#9ca3af" isAnimationActive={false}>
            {test.map((p) => (
              <Cell key={p.id} fill={classColor(p.label)} fillOpacity={0.45} />
            ))}
          </Scatter>
          <Scatter name="forget samples" data={forget} fill="#111827" shape="diamond" isAnimationActive={false}>
            {forget.map((p) => (
              <Cell key={p.id} fill={classColor(p.label)} stroke="#111827" strokeWidth={1.5} />
            ))}
          </Scatter>
          <Legend wrapperStyle={{ fontSize: 12 }} />
        </ScatterChart>
      </ResponsiveContainer>
    </figure>
  );
}

function FeatureMap({ views }: { views: JobViews }): ReactNode {
  const map = views.feature_map;
  return (
    <section className="card" aria-labelledby="cmp-map">
      <h3 id="cmp-map">Feature space</h3>
      {map ? (
        <>
          <p className="muted small">
            Penultimate-layer features of {map.points.length} fixed samples, projected on one PCA basis ({map.basis}; explained variance{" "}
            {map.explained_variance_ratio.map((r) => pct(r)).join(" / ")}), so both maps share axes. Diamonds are forget samples.
          </p>
          <div className="two-col">
            {map.points.some((p) => p.before) && <MapChart title="Before (original)" points={map.points} role="before" />}
            <MapChart title="After (unlearned)" points={map.points} role="after" />
          </div>
        </>
      ) : (
        <Empty>No feature map: this model is an ensemble (SISA) without one feature space.</Empty>
      )}
    </section>
  );
}

function Cka({ views }: { views: JobViews }): ReactNode {
  const cka = views.cka;
  const rows = cka ? cka.layers.map((layer, i) => ({ layer, to_original: cka.to_original?.[i] ?? null, to_reference: cka.to_reference?.[i] ?? null })) : [];
  const lines: [keyof (typeof rows)[number], string, string][] = [
    ["to_original", "to the original", ROLE_COLOR.before],
    ["to_reference", "to the retrained reference", ROLE_COLOR.reference],
  ];
  const shown = lines.filter(([key]) => rows.some((r) => r[key] !== null));
  return (
    <section className="card" aria-labelledby="cmp-cka">
      <h3 id="cmp-cka">Layer similarity (linear CKA)</h3>
      {cka && rows.length ? (
        <>
          <p className="muted small">
            Per layer, on one fixed batch of {cka.batch_size} samples: 1 = the same representation up to rotation and scale. Where the curve to the original stays high
            and the one to the reference drops, the forgotten data still lives in that layer.
          </p>
          <figure className="chart" aria-label="CKA per layer">
            <ResponsiveContainer width="100%" height={240}>
              <LineChart data={rows} margin={{ top: 8, right: 16, bottom: 4, left: 0 }}>
                <CartesianGrid strokeDasharray="3 3" stroke="#e5e7eb" />
                <XAxis dataKey="layer" tick={{ fontSize: 11 }} />
                <YAxis domain={[0, 1]} width={44} tick={{ fontSize: 12 }} />
                <Tooltip formatter={(value) => num(typeof value === "number" ? value : null)} />
                <Legend wrapperStyle={{ fontSize: 12 }} />
                {shown.map(([key, name, color]) => (
                  <Line key={key} dataKey={key} name={name} stroke={color} dot={{ r: 3 }} isAnimationActive={false} connectNulls />
                ))}
              </LineChart>
            </ResponsiveContainer>
          </figure>
          <details>
            <summary>Numbers</summary>
            <table className="table">
              <caption className="sr-only">CKA per layer</caption>
              <thead>
                <tr>
                  <th scope="col">layer</th>
                  {shown.map(([key, name]) => (
                    <th key={key} scope="col" className="num">
                      {name}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.layer}>
                    <th scope="row">
                      <code>{r.layer}</code>
                    </th>
                    {shown.map(([key]) => (
                      <td key={key} className="num">
                        {num(r[key] as number | null)}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        </>
      ) : (
        <Empty>No layer similarity: it needs the original or the reference network beside this one (and not an ensemble).</Empty>
      )}
    </section>
  );
}

function Attack({ views }: { views: JobViews }): ReactNode {
  const attack = views.attack;
  const roles = views.models.filter((r) => attack.roc[r]?.length);
  return (
    <section className="card" aria-labelledby="cmp-attack">
      <h3 id="cmp-attack">Membership attack</h3>
      <p className="muted small">
        Loss threshold attack: &ldquo;loss at or below t means it was trained on&rdquo;, forget samples as members, test samples as non-members, every t swept. On the
        diagonal (AUC 0.5) the attack cannot tell the forget set from unseen data. AUC:{" "}
        {roles.map((r) => `${ROLE_LABEL[r] ?? r} ${num(attack.auc[r])}`).join(", ") || "—"}.
      </p>
      {roles.length ? (
        <figure className="chart" aria-label="Threshold sweep (ROC)">
          <figcaption className="muted small">x: false positive rate (test samples called members), y: true positive rate (forget samples called members)</figcaption>
          <ResponsiveContainer width="100%" height={280}>
            <ScatterChart margin={{ top: 8, right: 16, bottom: 4, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" stroke="#e5e7eb" />
              <XAxis dataKey="fpr" type="number" domain={[0, 1]} name="false positive rate" tick={{ fontSize: 12 }} />
              <YAxis dataKey="tpr" type="number" domain={[0, 1]} name="true positive rate" width={44} tick={{ fontSize: 12 }} />
              <ZAxis range={[10, 10]} />
              <ReferenceLine segment={[{ x: 0, y: 0 }, { x: 1, y: 1 }]} stroke="#6b7280" strokeDasharray="4 4" />
              <Tooltip formatter={(value) => (typeof value === "number" ? value.toFixed(3) : String(value))} />
              <Legend wrapperStyle={{ fontSize: 12 }} />
              {roles.map((r) => (
                <Scatter
                  key={r}
                  name={`${ROLE_LABEL[r] ?? r} (AUC ${num(attack.auc[r])})`}
                  data={(attack.roc[r] ?? []).map(([fpr, tpr]) => ({ fpr, tpr }))}
                  fill={ROLE_COLOR[r]}
                  line={{ stroke: ROLE_COLOR[r], strokeWidth: 2 }}
                  isAnimationActive={false}
                />
              ))}
            </ScatterChart>
          </ResponsiveContainer>
        </figure>
      ) : (
        <Empty>No sweep: the test set has no non-member of the retained classes.</Empty>
      )}
      <h4>Forget samples most at risk</h4>
      {attack.at_risk.length ? (
        <table className="table">
          <caption className="sr-only">Forget samples the attack still calls members most confidently</caption>
          <thead>
            <tr>
              <th scope="col">sample</th>
              <th scope="col">id</th>
              <th scope="col" className="num">
                label
              </th>
              <th scope="col" className="num">
                predicted
              </th>
              <th scope="col" className="num">
                loss
              </th>
              <th scope="col" className="num" title="Share of test samples with a higher loss: 1 looks most like training data">
                member score
              </th>
              <th scope="col" className="num">
                before
              </th>
            </tr>
          </thead>
          <tbody>
            {attack.at_risk.map((s) => (
              <tr key={s.sample_id}>
                <td>
                  <AuthImage src={s.image_url} alt={`sample ${s.sample_id}`} size={40} />
                </td>
                <td>
                  <code>{s.sample_id}</code>
                </td>
                <td className="num">{s.label}</td>
                <td className="num">{s.predicted}</td>
                <td className="num">{num(s.loss)}</td>
                <td className="num">{num(s.score, 2)}</td>
                <td className="num">{num(s.score_before, 2)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <Empty>No forget sample to rank.</Empty>
      )}
    </section>
  );
}
