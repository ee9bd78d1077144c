import { useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";

import { api, unwrap } from "../api/client";
import { discriminatedBodies } from "../api/openapi";
import { useAllDatasets, useAllModels, useDatasetVersions, useModelVersions, useVersion } from "../api/queries";
import type { EvaluateJobCreate, TrainJobCreate } from "../api/types";
import { useCan } from "../auth";
import { SchemaForm, type WidgetProps, type Widgets } from "../forms/SchemaForm";
import { Empty } from "../components/States";

const BODIES = discriminatedBodies("/api/v1/jobs", "post");
// Kinds this page has pickers for; others (unlearn, …) get their own pages as they land.
const KINDS = ["train", "evaluate"].filter((k) => k in BODIES);

function ModelSelect({ id, value, onChange, invalid, describedBy }: WidgetProps): ReactNode {
  const models = useAllModels();
  return (
    <select id={id} aria-invalid={invalid || undefined} aria-describedby={describedBy} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)}>
      <option value="">{models.isPending ? "Loading models…" : "Choose a model"}</option>
      {(models.data ?? []).map((m) => (
        <option key={m.id} value={m.id}>
          {m.name} ({m.family}, {String(m.architecture.name ?? "")})
        </option>
      ))}
    </select>
  );
}

function DatasetSelect({ id, value, onChange, invalid, describedBy, field }: WidgetProps): ReactNode {
  const datasets = useAllDatasets();
  return (
    <select id={id} aria-invalid={invalid || undefined} aria-describedby={describedBy} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)}>
      <option value="">{datasets.isPending ? "Loading datasets…" : field.required ? "Choose a dataset" : "(the one it was trained on)"}</option>
      {(datasets.data ?? []).map((d) => (
        <option key={d.id} value={d.id}>
          {d.name} ({d.num_samples} samples, {d.label_names.length} classes)
        </option>
      ))}
    </select>
  );
}

function DatasetVersionSelect({ id, value, onChange, invalid, describedBy, draft }: WidgetProps): ReactNode {
  const datasetId = typeof draft.dataset_id === "string" && draft.dataset_id ? draft.dataset_id : null;
  const versions = useDatasetVersions(datasetId);
  return (
    <select id={id} aria-invalid={invalid || undefined} aria-describedby={describedBy} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} disabled={!datasetId}>
      <option value="">(current version)</option>
      {(versions.data ?? []).map((v) => (
        <option key={v.id} value={String(v.version)}>
          v{v.version} · {v.num_samples} samples · {v.reason}
        </option>
      ))}
    </select>
  );
}

function ParentVersionSelect({ id, value, onChange, invalid, describedBy, draft }: WidgetProps): ReactNode {
  const modelId = typeof draft.model_id === "string" && draft.model_id ? draft.model_id : null;
  const versions = useModelVersions(modelId, "active", undefined, 200);
  return (
    <select id={id} aria-invalid={invalid || undefined} aria-describedby={describedBy} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} disabled={!modelId}>
      <option value="">(train from scratch)</option>
      {(versions.data?.data ?? []).map((v) => (
        <option key={v.id} value={v.id}>
          v{v.version} · {v.source} · {v.sha256.slice(0, 12)}
        </option>
      ))}
    </select>
  );
}

/** Evaluate: pick a model, then one of its versions. */
function VersionPicker({ id, value, onChange, invalid, describedBy }: WidgetProps): ReactNode {
  const [picked, setPicked] = useState<string>("");
  const chosen = useVersion(typeof value === "string" && value ? value : null);
  // A version given in the URL selects its model too.
  const modelId = picked || chosen.data?.model_id || "";
  const models = useAllModels();
  const versions = useModelVersions(modelId || null, undefined, undefined, 200);
  return (
    <span className="pair">
      <select
        aria-label="Model"
        value={modelId}
        onChange={(e) => {
          setPicked(e.target.value);
          onChange("");
        }}
      >
        <option value="">Choose a model</option>
        {(models.data ?? []).map((m) => (
          <option key={m.id} value={m.id}>
            {m.name}
          </option>
        ))}
      </select>
      <select id={id} aria-invalid={invalid || undefined} aria-describedby={describedBy} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} disabled={!modelId}>
        <option value="">{modelId ? "Choose a version" : "—"}</option>
        {(versions.data?.data ?? []).map((v) => (
          <option key={v.id} value={v.id} disabled={v.status === "purged"}>
            v{v.version} · {v.status} · {v.source}
          </option>
        ))}
      </select>
    </span>
  );
}

const ORDER = ["model_id", "model_version_id", "parent_version_id", "dataset_id", "dataset_version", "splits", "params", "params.epochs", "params.batch_size", "params.lr", "params.optimizer", "params.max_train_samples"];

const WIDGETS: Record<string, Widgets> = {
  train: { model_id: ModelSelect, dataset_id: DatasetSelect, dataset_version: DatasetVersionSelect, parent_version_id: ParentVersionSelect },
  evaluate: { model_version_id: VersionPicker, dataset_id: DatasetSelect, dataset_version: DatasetVersionSelect },
};

export function JobSubmit(): ReactNode {
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const canWrite = useCan("write");
  const kind = KINDS.includes(params.get("kind") ?? "") ? params.get("kind")! : KINDS[0];
  const initial = Object.fromEntries(
    ["model_id", "dataset_id", "model_version_id", "parent_version_id"].filter((k) => params.get(k)).map((k) => [k, params.get(k)!]),
  );

  if (!canWrite) {
    return (
      <section>
        <h1>Submit a job</h1>
        <Empty>Your role may not submit jobs; ask an engineer or an admin.</Empty>
      </section>
    );
  }
  const schema = BODIES[kind];
  return (
    <section>
      <p className="crumbs">
        <Link to="/jobs">Jobs</Link> /
      </p>
      <h1>Submit a job</h1>
      <div className="tabs" role="radiogroup" aria-label="Job kind">
        {KINDS.map((k) => (
          <label key={k} className={k === kind ? "tab active" : "tab"}>
            <input
              type="radio"
              name="job-kind"
              value={k}
              checked={k === kind}
              onChange={() => setParams(new URLSearchParams({ ...initial, kind: k }), { replace: true })}
            />
            {k}
          </label>
        ))}
      </div>
      {schema.description && <p className="muted">{schema.description}</p>}
      <SchemaForm
        key={kind}
        label={`Submit a ${kind} job`}
        schema={schema}
        initial={initial}
        widgets={WIDGETS[kind] ?? {}}
        order={ORDER}
        submitLabel={`Submit ${kind} job`}
        onSubmit={async (value) => {
          const job = await unwrap(api.POST("/api/v1/jobs", { body: value as unknown as TrainJobCreate | EvaluateJobCreate }));
          void queryClient.invalidateQueries({ queryKey: ["jobs"] });
          navigate(`/jobs/${job.id}`);
        }}
      />
    </section>
  );
}
