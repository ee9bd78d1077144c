import { useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";

import { api, unwrap } from "../api/client";
import { parameterChoices, requestSchema } from "../api/openapi";
import { useModel, useModelVersions } from "../api/queries";
import { useCan } from "../auth";
import { Mono, StateBadge } from "../components/Badges";
import { Facts, ObjectTable } from "../components/KeyValue";
import { Pager, useCursorPager } from "../components/Pager";
import { Empty, QueryView } from "../components/States";
import { bytes, Time } from "../components/Time";
import { SchemaForm } from "../forms/SchemaForm";
import { toFormData } from "../forms/schema";

const UPLOAD = requestSchema("/api/v1/models/{model_id}/versions", "post");
const STATUSES = parameterChoices("/api/v1/models/{model_id}/versions", "get", "status");

function UploadCheckpoint({ modelId }: { modelId: string }): ReactNode {
  const [open, setOpen] = useState(false);
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  return (
    <>
      <button type="button" aria-expanded={open} onClick={() => setOpen(!open)}>
        Upload a checkpoint
      </button>
      {open && (
        <div className="card">
          <h2>Upload a checkpoint</h2>
          <SchemaForm
            label="Upload a checkpoint"
            schema={UPLOAD}
            submitLabel="Upload checkpoint"
            extraValidate={(v): Record<string, string> => {
              if (typeof v.metrics !== "string") return {};
              try {
                const parsed: unknown = JSON.parse(v.metrics);
                return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? {} : { metrics: "Must be a JSON object" };
              } catch {
                return { metrics: "Not valid JSON" };
              }
            }}
            onSubmit={async (value) => {
              const version = await unwrap(
                api.POST("/api/v1/models/{model_id}/versions", {
                  params: { path: { model_id: modelId } },
                  body: value as never,
                  bodySerializer: () => toFormData(value),
                }),
              );
              void queryClient.invalidateQueries({ queryKey: ["model-versions", modelId] });
              void queryClient.invalidateQueries({ queryKey: ["models"] });
              navigate(`/versions/${version.id}`);
            }}
          />
        </div>
      )}
    </>
  );
}

export function ModelDetail(): ReactNode {
  const { modelId = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const status = params.get("status") ?? "";
  const model = useModel(modelId);
  const pager = useCursorPager(status);
  const versions = useModelVersions(modelId, status || undefined, pager.cursor);
  const canWrite = useCan("write");
  return (
    <section>
      <p className="crumbs">
        <Link to="/models">Models</Link> /
      </p>
      <QueryView query={model} what="the model">
        {(m) => (
          <>
            <div className="page-head">
              <h1>{m.name}</h1>
              {canWrite && (
                <>
                  <Link className="button primary" to={`/jobs/new?kind=train&model_id=${m.id}`}>
                    Train
                  </Link>
                  <UploadCheckpoint modelId={m.id} />
                </>
              )}
            </div>
            {m.description && <p>{m.description}</p>}
            <div className="grid-2">
              <Facts
                items={[
                  ["Id", <Mono>{m.id}</Mono>],
                  ["Family", m.family],
                  ["Latest version", m.latest_version ? `v${m.latest_version}` : "none yet"],
                  ["Created", <Time value={m.created_at} />],
                ]}
              />
              <div>
                <h2 className="h3">Architecture</h2>
                <ObjectTable value={m.architecture} caption="Architecture" />
              </div>
            </div>
            <h2>Versions</h2>
            <form className="filters" aria-label="Filter versions" onSubmit={(e) => e.preventDefault()}>
              <label>
                Status
                <select value={status} onChange={(e) => setParams(e.target.value ? { status: e.target.value } : {}, { replace: true })}>
                  <option value="">any</option>
                  {STATUSES.map((s) => (
                    <option key={s}>{s}</option>
                  ))}
                </select>
              </label>
            </form>
            <QueryView query={versions} what="versions">
              {(page) =>
                page.data.length === 0 ? (
                  <Empty>{status ? `No ${status} versions.` : "No versions yet: train the model or upload a checkpoint."}</Empty>
                ) : (
                  <>
                    <table className="table">
                      <caption className="sr-only">Model versions</caption>
                      <thead>
                        <tr>
                          <th scope="col">Version</th>
                          <th scope="col">Status</th>
                          <th scope="col">Source</th>
                          <th scope="col" className="num">Test accuracy</th>
                          <th scope="col">sha256</th>
                          <th scope="col" className="num">Size</th>
                          <th scope="col">Created</th>
                        </tr>
                      </thead>
                      <tbody>
                        {page.data.map((v) => (
                          <tr key={v.id}>
                            <td>
                              <Link to={`/versions/${v.id}`}>v{v.version}</Link>
                            </td>
                            <td>
                              <StateBadge state={v.status} />
                            </td>
                            <td>{v.source}</td>
                            <td className="num">{typeof v.metrics.test_accuracy === "number" ? v.metrics.test_accuracy.toFixed(4) : "—"}</td>
                            <td>
                              <Mono title={v.sha256}>{v.sha256.slice(0, 12)}…</Mono>
                            </td>
                            <td className="num">{bytes(v.size_bytes)}</td>
                            <td>
                              <Time value={v.created_at} />
                            </td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                    <Pager label="Versions" page={pager.page} nextCursor={page.next_cursor} onNext={pager.next} onPrev={pager.prev} />
                  </>
                )
              }
            </QueryView>
          </>
        )}
      </QueryView>
    </section>
  );
}
