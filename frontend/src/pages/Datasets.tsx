import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Link, useNavigate } from "react-router";

import { api, unwrap } from "../api/client";
import { requestSchema } from "../api/openapi";
import { useDatasets } from "../api/queries";
import type { DatasetCreate } from "../api/types";
import { useCan } from "../auth";
import { Pager, useCursorPager } from "../components/Pager";
import { Empty, QueryView } from "../components/States";
import { Time } from "../components/Time";
import { SchemaForm, type WidgetProps } from "../forms/SchemaForm";
import { toFormData } from "../forms/schema";

const CREATE = requestSchema("/api/v1/datasets", "post");
const UPLOAD = requestSchema("/api/v1/datasets/upload", "post");

function SourceSelect({ id, value, onChange, invalid, describedBy }: WidgetProps): ReactNode {
  const sources = useQuery({ queryKey: ["sources"], queryFn: () => unwrap(api.GET("/api/v1/datasets/sources")), staleTime: 300_000 });
  const chosen = sources.data?.find((s) => s.name === value);
  return (
    <>
      <select id={id} aria-invalid={invalid || undefined} aria-describedby={describedBy} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)}>
        <option value="">{sources.isPending ? "Loading sources…" : sources.error ? "Could not load sources" : "Choose a source"}</option>
        {(sources.data ?? []).map((s) => (
          <option key={s.name} value={s.name} disabled={!s.available}>
            {s.name}
            {s.available ? "" : ` — unavailable: ${s.reason ?? ""}`}
          </option>
        ))}
      </select>
      {chosen && <span className="help">{chosen.description}</span>}
    </>
  );
}

function Forms(): ReactNode {
  const [open, setOpen] = useState<"builtin" | "upload" | null>(null);
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const created = (id: string) => {
    void queryClient.invalidateQueries({ queryKey: ["datasets"] });
    navigate(`/datasets/${id}`);
  };
  return (
    <>
      <div className="actions">
        <button type="button" aria-expanded={open === "builtin"} onClick={() => setOpen(open === "builtin" ? null : "builtin")}>
          Register a built-in dataset
        </button>
        <button type="button" aria-expanded={open === "upload"} onClick={() => setOpen(open === "upload" ? null : "upload")}>
          Upload a dataset
        </button>
      </div>
      {open === "builtin" && (
        <div className="card">
          <h2>Register a built-in dataset</h2>
          <SchemaForm
            label="Register a built-in dataset"
            schema={CREATE}
            widgets={{ "source.name": SourceSelect }}
            order={["name", "source", "description"]}
            submitLabel="Register dataset"
            onSubmit={async (value) => {
              const ds = await unwrap(api.POST("/api/v1/datasets", { body: value as unknown as DatasetCreate }));
              created(ds.id);
            }}
          />
        </div>
      )}
      {open === "upload" && (
        <div className="card">
          <h2>Upload a dataset</h2>
          <p className="muted">
            Images: one folder per label inside a .zip, .tar or .tar.gz; images are resized to the given size. Text: a .jsonl, .csv or .parquet file of records with
            text, or question and answer, and the subject_id of the person each is about.
          </p>
          <SchemaForm
            label="Upload a dataset"
            schema={UPLOAD}
            submitLabel="Upload dataset"
            order={["name", "file", "description", "modality", "require_subjects", "image_height", "image_width", "channels"]}
            extraValidate={(v): Record<string, string> => ((v.image_height === undefined) !== (v.image_width === undefined) ? { image_width: "Give both height and width, or neither" } : {})}
            onSubmit={async (value) => {
              const ds = await unwrap(
                api.POST("/api/v1/datasets/upload", {
                  body: value as never,
                  bodySerializer: () => toFormData(value),
                }),
              );
              created(ds.id);
            }}
          />
        </div>
      )}
    </>
  );
}

export function Datasets(): ReactNode {
  const pager = useCursorPager("datasets");
  const datasets = useDatasets(pager.cursor);
  const canWrite = useCan("write");
  return (
    <section>
      <div className="page-head">
        <h1>Datasets</h1>
      </div>
      {canWrite && <Forms />}
      <QueryView query={datasets} what="datasets">
        {(page) =>
          page.data.length === 0 ? (
            <Empty>No datasets yet{canWrite ? ": register a built-in one or upload one above." : "."}</Empty>
          ) : (
            <>
              <p className="muted">{page.count} dataset(s)</p>
              <table className="table">
                <caption className="sr-only">Datasets</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Source</th>
                    <th scope="col" className="num">Samples</th>
                    <th scope="col" className="num">Subjects</th>
                    <th scope="col" className="num">Classes</th>
                    <th scope="col">Samples are</th>
                    <th scope="col" className="num">Version</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  {page.data.map((d) => (
                    <tr key={d.id}>
                      <td>
                        <Link to={`/datasets/${d.id}`}>{d.name}</Link>
                      </td>
                      <td>{d.source}</td>
                      <td className="num">{d.num_samples.toLocaleString()}</td>
                      <td className="num">{d.num_subjects.toLocaleString()}</td>
                      <td className="num">{d.label_names.length}</td>
                      <td>{d.modality === "text" ? "text" : `images ${d.image_shape.join("×")}`}</td>
                      <td className="num">v{d.current_version}</td>
                      <td>
                        <Time value={d.created_at} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <Pager label="Datasets" page={pager.page} nextCursor={page.next_cursor} onNext={pager.next} onPrev={pager.prev} />
            </>
          )
        }
      </QueryView>
    </section>
  );
}
