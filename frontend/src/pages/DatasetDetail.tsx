import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useState, type FormEvent, type ReactNode } from "react";
import { Link, useParams, useSearchParams } from "react-router";

import { api, unwrap } from "../api/client";
import { parameterChoices } from "../api/openapi";
import { useDataset, useDatasetVersions } from "../api/queries";
import type { Dataset, Sample } from "../api/types";
import { useCan } from "../auth";
import { AuthImage } from "../components/AuthImage";
import { Mono } from "../components/Badges";
import { Facts } from "../components/KeyValue";
import { Pager, useCursorPager, useSlicePager } from "../components/Pager";
import { Empty, QueryView } from "../components/States";
import { Time } from "../components/Time";

const SPLITS = parameterChoices("/api/v1/datasets/{dataset_id}/samples", "get", "split");
const PAGE_SIZE = 48;

/** A text sample: its question and answer (with the evaluation answers folded away) or its text. */
function TextSampleBody({ sample }: { sample: Sample }): ReactNode {
  if (sample.question) {
    const wrong = sample.perturbed_answers ?? [];
    return (
      <>
        <dl className="qa">
          <dt>Question</dt>
          <dd>{sample.question}</dd>
          <dt>Answer</dt>
          <dd>{sample.answer}</dd>
        </dl>
        {(sample.paraphrased_answer || wrong.length > 0) && (
          <details>
            <summary>Evaluation answers</summary>
            <dl className="qa">
              {sample.paraphrased_answer && (
                <>
                  <dt>Paraphrased</dt>
                  <dd>{sample.paraphrased_answer}</dd>
                </>
              )}
              {wrong.length > 0 && (
                <>
                  <dt>Wrong ({wrong.length})</dt>
                  <dd>
                    <ul>
                      {wrong.map((w, i) => (
                        <li key={i}>{w}</li>
                      ))}
                    </ul>
                  </dd>
                </>
              )}
            </dl>
          </details>
        )}
      </>
    );
  }
  if (sample.text) return <p className="text-sample-text">{sample.text}</p>;
  // Listed for an older version after a deletion request purged it.
  return <p className="muted">Text deleted by a deletion request.</p>;
}

function SampleBrowser({ dataset }: { dataset: Dataset }): ReactNode {
  const [params, setParams] = useSearchParams();
  const versions = useDatasetVersions(dataset.id);
  const label = params.get("label") ?? "";
  const subject = params.get("subject_id") ?? "";
  const split = params.get("split") ?? "";
  const version = params.get("version") ?? "";
  const [subjectText, setSubjectText] = useState(subject);
  const filters = { label: label === "" ? undefined : Number(label), subject_id: subject || undefined, split: split || undefined, version: version ? Number(version) : undefined };
  const pager = useCursorPager(JSON.stringify(filters));
  const samples = useQuery({
    queryKey: ["samples", dataset.id, filters, pager.cursor],
    queryFn: () =>
      unwrap(
        api.GET("/api/v1/datasets/{dataset_id}/samples", {
          params: { path: { dataset_id: dataset.id }, query: { ...filters, cursor: pager.cursor, limit: PAGE_SIZE } },
        }),
      ),
    placeholderData: keepPreviousData,
  });
  const set = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next, { replace: true });
  };
  const applySubject = (e: FormEvent) => {
    e.preventDefault();
    set("subject_id", subjectText.trim());
  };
  const size = 84;
  const isText = dataset.modality === "text";
  const subjectLink = (s: Sample) =>
    s.subject_id ? (
      <button type="button" className="link" onClick={() => { setSubjectText(s.subject_id!); set("subject_id", s.subject_id!); }} title={`Show only subject ${s.subject_id}`}>
        {s.subject_id}
      </button>
    ) : (
      <span className="muted">no subject</span>
    );

  return (
    <section aria-labelledby="samples-h">
      <h2 id="samples-h">Samples</h2>
      <form className="filters" role="search" aria-label="Filter samples" onSubmit={applySubject}>
        {!isText && (
          <label>
            Label
            <select value={label} onChange={(e) => set("label", e.target.value)}>
              <option value="">any</option>
              {dataset.label_names.map((name, i) => (
                <option key={i} value={i}>
                  {i} · {name}
                </option>
              ))}
            </select>
          </label>
        )}
        <label>
          Subject id
          <input type="search" value={subjectText} onChange={(e) => setSubjectText(e.target.value)} placeholder="e.g. s01" maxLength={200} />
        </label>
        <button type="submit">Apply</button>
        <label>
          Split
          <select value={split} onChange={(e) => set("split", e.target.value)}>
            <option value="">any</option>
            {SPLITS.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Version
          <select value={version} onChange={(e) => set("version", e.target.value)}>
            <option value="">current (v{dataset.current_version})</option>
            {(versions.data ?? []).map((v) => (
              <option key={v.id} value={v.version}>
                v{v.version}
              </option>
            ))}
          </select>
        </label>
        {(label || subject || split || version) && (
          <button
            type="button"
            onClick={() => {
              setSubjectText("");
              setParams(new URLSearchParams(), { replace: true });
            }}
          >
            Clear filters
          </button>
        )}
      </form>
      <QueryView query={samples} what="samples">
        {(page) =>
          page.data.length === 0 ? (
            <Empty>No samples match these filters.</Empty>
          ) : (
            <>
              {isText ? (
                <ul className="text-samples" aria-busy={samples.isFetching} aria-label="Text samples">
                  {page.data.map((s) => (
                    <li key={s.sample_id} className="text-sample">
                      <TextSampleBody sample={s} />
                      <span className="sample-meta">
                        <Mono>{s.sample_id}</Mono> · {subjectLink(s)} · {s.split}
                        {s.kind ? ` · ${s.kind}` : ""}
                      </span>
                    </li>
                  ))}
                </ul>
              ) : (
                <ul className="samples" aria-busy={samples.isFetching}>
                  {page.data.map((s) => (
                    <li key={s.sample_id} className="sample">
                      {s.image_url && <AuthImage src={s.image_url} alt={`Sample ${s.sample_id}${s.label_name ? `, label ${s.label_name}` : ""}`} size={size} />}
                      <span className="sample-label">{s.label_name ?? (s.label !== null ? String(s.label) : s.caption ?? "—")}</span>
                      <span className="sample-meta" title={s.sample_id}>
                        {subjectLink(s)} · {s.split}
                      </span>
                    </li>
                  ))}
                </ul>
              )}
              <Pager label="Samples" page={pager.page} nextCursor={page.next_cursor} onNext={pager.next} onPrev={pager.prev} />
            </>
          )
        }
      </QueryView>
    </section>
  );
}

export function DatasetDetail(): ReactNode {
  const { datasetId = "" } = useParams();
  const dataset = useDataset(datasetId);
  const versions = useDatasetVersions(datasetId);
  const { rows: versionRows, ...versionPager } = useSlicePager(versions.data ?? [], 10);
  const canWrite = useCan("write");
  return (
    <section>
      <p className="crumbs">
        <Link to="/datasets">Datasets</Link> /
      </p>
      <QueryView query={dataset} what="the dataset">
        {(d) => (
          <>
            <div className="page-head">
              <h1>{d.name}</h1>
              {canWrite && (
                <Link className="button" to={`/jobs/new?kind=train&dataset_id=${d.id}`}>
                  Train a model on it
                </Link>
              )}
            </div>
            {d.description && <p>{d.description}</p>}
            <Facts
              items={[
                ["Id", <Mono>{d.id}</Mono>],
                ["Source", d.source],
                ["Samples", d.num_samples.toLocaleString()],
                ["Subjects", d.num_subjects.toLocaleString()],
                ["Modality", d.modality === "text" ? "text (question/answer pairs and texts)" : "images"],
                ...(d.modality === "text"
                  ? []
                  : ([
                      ["Image shape", d.image_shape.join(" × ")],
                      ["Labels", d.label_names.length ? d.label_names.join(", ") : "—"],
                    ] as [string, ReactNode][])),
                ["Current version", `v${d.current_version}`],
                ["Created", <Time value={d.created_at} />],
              ]}
            />
            <h2>Versions</h2>
            <QueryView query={versions} what="versions">
              {(list) =>
                list.length === 0 ? (
                  <Empty>No versions.</Empty>
                ) : (
                  <>
                  <table className="table">
                    <caption className="sr-only">Dataset versions</caption>
                    <thead>
                      <tr>
                        <th scope="col">Version</th>
                        <th scope="col" className="num">Samples</th>
                        <th scope="col">Splits</th>
                        <th scope="col">Reason</th>
                        <th scope="col">Content hash</th>
                        <th scope="col">Created</th>
                      </tr>
                    </thead>
                    <tbody>
                      {versionRows.map((v) => (
                        <tr key={v.id}>
                          <td>v{v.version}</td>
                          <td className="num">{v.num_samples.toLocaleString()}</td>
                          <td>
                            {Object.entries(v.split_counts)
                              .map(([k, n]) => `${k} ${n.toLocaleString()}`)
                              .join(" · ")}
                          </td>
                          <td>{v.reason}</td>
                          <td>
                            <Mono title={v.content_hash}>{v.content_hash.slice(0, 16)}…</Mono>
                          </td>
                          <td>
                            <Time value={v.created_at} />
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                  <Pager label="Dataset versions" {...versionPager} />
                  </>
                )
              }
            </QueryView>
            <SampleBrowser key={d.id} dataset={d} />
          </>
        )}
      </QueryView>
    </section>
  );
}
