import { useQueryClient } from "@tanstack/react-query";
import { useMemo, useState, type ReactNode } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";

import { api, unwrap } from "../api/client";
import { generateParamsIndex, generates, useMethods, type Method } from "../api/generations";
import { deref, discriminatedBodies, type JsonSchema } from "../api/openapi";
import { useAllDatasets, useAllModels, useDatasetVersions, useModelVersions, useVersion } from "../api/queries";
import type { Model } from "../api/types";
import { useCan } from "../auth";
import { Empty, ErrorMessage, Loading } from "../components/States";
import { SchemaForm, type WidgetProps, type Widgets } from "../forms/SchemaForm";
import { chosenVariant, fieldsOf, unwrap as unwrapSchema, variantDraft, type Draft, type DraftValue } from "../forms/schema";

const BODIES = discriminatedBodies("/api/v1/jobs", "post");
/** Every kind POST /jobs takes, in the API's order. */
export const KINDS = Object.keys(BODIES);

/** Which params alternative of a train job fits a model family (the schema's union). */
const TRAIN_PARAMS_BY_FAMILY: Record<string, string> = { classifier: "TrainParams", ddpm: "DiffusionTrainParams" };


/** A fresh params draft of the alternative that fits `family`, or null when none does. */
export function trainParamsFor(family: string | undefined): Draft | null {
  const field = fieldsOf(BODIES.train).find((f) => f.name === "params");
  const wanted = family ? TRAIN_PARAMS_BY_FAMILY[family] : undefined;
  const index = field?.variants?.findIndex((v) => v.title === wanted) ?? -1;
  return field && index >= 0 ? variantDraft(field, index) : null;
}

type SelectProps = Pick<WidgetProps, "id" | "invalid" | "describedBy">;
const selectProps = ({ id, invalid, describedBy }: SelectProps) => ({ id, "aria-invalid": invalid || undefined, "aria-describedby": describedBy });

/** Train: choosing a model also chooses the params form of its family. */
function ModelSelect(props: WidgetProps): ReactNode {
  const { value, onChange, set } = props;
  const models = useAllModels();
  return (
    <select
      {...selectProps(props)}
      value={String(value ?? "")}
      onChange={(e) => {
        onChange(e.target.value);
        const params = trainParamsFor(models.data?.find((m) => m.id === e.target.value)?.family);
        if (params) set("params", params);
      }}
    >
      <option value="">{models.isPending ? "Loading models…" : "Choose a model"}</option>
      {(models.data ?? []).map((m) => (
        <option key={m.id} value={m.id}>
          {m.name} ({m.family}, {String(m.architecture.name ?? m.architecture.family ?? "")})
        </option>
      ))}
    </select>
  );
}

function DatasetSelect(props: WidgetProps): ReactNode {
  const { value, onChange, field } = props;
  const datasets = useAllDatasets();
  return (
    <select {...selectProps(props)} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)}>
      <option value="">{datasets.isPending ? "Loading datasets…" : field.required ? "Choose a dataset" : "(the one it was trained on)"}</option>
      {(datasets.data ?? []).map((d) => (
        <option key={d.id} value={d.id}>
          {d.name} ({d.num_samples} samples, {d.label_names.length} classes)
        </option>
      ))}
    </select>
  );
}

function DatasetVersionSelect(props: WidgetProps): ReactNode {
  const { value, onChange, draft } = props;
  const datasetId = typeof draft.dataset_id === "string" && draft.dataset_id ? draft.dataset_id : null;
  const versions = useDatasetVersions(datasetId);
  return (
    <select {...selectProps(props)} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} disabled={!datasetId}>
      <option value="">(current version)</option>
      {(versions.data ?? []).map((v) => (
        <option key={v.id} value={String(v.version)}>
          v{v.version} · {v.num_samples} samples · {v.reason}
        </option>
      ))}
    </select>
  );
}

function ParentVersionSelect(props: WidgetProps): ReactNode {
  const { value, onChange, draft } = props;
  const modelId = typeof draft.model_id === "string" && draft.model_id ? draft.model_id : null;
  const versions = useModelVersions(modelId, "active", undefined, 200);
  return (
    <select {...selectProps(props)} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)} disabled={!modelId}>
      <option value="">(train from scratch)</option>
      {(versions.data?.data ?? []).map((v) => (
        <option key={v.id} value={v.id}>
          v{v.version} · {v.source} · {v.sha256.slice(0, 12)}
        </option>
      ))}
    </select>
  );
}

/**
 * A model, then one of its versions. `only` narrows the models (e.g. those that
 * generate); `onModel` hears which model the chosen version belongs to.
 */
export function VersionChooser({
  id,
  value,
  onChange,
  invalid,
  describedBy,
  only,
  onModel,
  label = "Model",
}: SelectProps & { value: string; onChange: (v: string, model: Model | undefined) => void; only?: (m: Model) => boolean; onModel?: (m: Model | undefined) => void; label?: string }): ReactNode {
  const [picked, setPicked] = useState<string>("");
  const chosen = useVersion(value || null);
  // A version given in the URL selects its model too.
  const modelId = picked || chosen.data?.model_id || "";
  const models = useAllModels();
  const versions = useModelVersions(modelId || null, undefined, undefined, 200);
  const offered = (models.data ?? []).filter((m) => !only || only(m));
  const model = models.data?.find((m) => m.id === modelId);
  return (
    <span className="pair">
      <select
        aria-label={label}
        value={modelId}
        onChange={(e) => {
          setPicked(e.target.value);
          onChange("", undefined);
          onModel?.(models.data?.find((m) => m.id === e.target.value));
        }}
      >
        <option value="">{models.isPending ? "Loading models…" : offered.length ? "Choose a model" : "No model fits"}</option>
        {offered.map((m) => (
          <option key={m.id} value={m.id}>
            {m.name} ({m.family})
          </option>
        ))}
      </select>
      <select id={id} aria-invalid={invalid || undefined} aria-describedby={describedBy} value={value} onChange={(e) => onChange(e.target.value, model)} disabled={!modelId}>
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

function EvaluateVersion(props: WidgetProps): ReactNode {
  return <VersionChooser {...props} value={String(props.value ?? "")} onChange={(v) => props.onChange(v)} />;
}

/** Generate: versions of generating models; a fresh choice offers one image per class. */
function GenerateVersion(props: WidgetProps): ReactNode {
  const { set, draft } = props;
  return (
    <VersionChooser
      {...props}
      value={String(props.value ?? "")}
      only={(m) => generates(m.family)}
      onChange={(v, model) => {
        props.onChange(v);
        if (!v || !model) return;
        // The model's kind of conditioning picks the params form (labels or prompts).
        const field = fieldsOf(BODIES.generate).find((f) => f.name === "params");
        let params = (draft.params ?? {}) as Draft;
        if (field?.variants) {
          const index = generateParamsIndex(model);
          if (chosenVariant(field, params) !== index) params = variantDraft(field, index);
        }
        const n = Number(model.architecture.num_classes ?? 0);
        if ("labels" in params && !String(params.labels ?? "").trim() && n > 0) {
          params = { ...params, labels: Array.from({ length: Math.min(n, 64) }, (_, i) => i).join(", ") };
        }
        set("params", params);
      }}
    />
  );
}

const ORDER = [
  "model_id",
  "model_version_id",
  "parent_version_id",
  "dataset_id",
  "dataset_version",
  "splits",
  "params",
  "params.labels",
  "params.prompts",
  "params.seeds",
  "params.seed",
  "params.guidance_scale",
  "params.num_inference_steps",
  "params.scheduler",
  "params.epochs",
  "params.steps",
  "params.batch_size",
  "params.lr",
  "params.optimizer",
  "params.max_train_samples",
];

const WIDGETS: Record<string, Widgets> = {
  train: { model_id: ModelSelect, dataset_id: DatasetSelect, dataset_version: DatasetVersionSelect, parent_version_id: ParentVersionSelect },
  evaluate: { model_version_id: EvaluateVersion, dataset_id: DatasetSelect, dataset_version: DatasetVersionSelect },
  generate: { model_version_id: GenerateVersion },
};

const SCOPE_TITLES: Record<string, string> = { subject_ids: "Data subjects", sample_ids: "Samples", labels: "Whole classes" };

/**
 * The unlearn body for one version and method: `params` is the method's own schema
 * (from GET /methods), `forget` one of the scopes the method takes (a union, so the
 * form offers the choice), the version and method fixed, and `judge` only for ddpm.
 */
export function unlearnSchema(base: JsonSchema, method: Method, family: string, versionId: string): JsonSchema {
  const props = base.properties ?? {};
  const scope = deref(props.forget ?? {});
  const scopes = Object.entries(scope.properties ?? {})
    .filter(([name]) => method.scopes.includes(name))
    .map(([name, s]) => ({ type: "object", title: SCOPE_TITLES[name] ?? name, properties: { [name]: s }, required: [name] }) as JsonSchema);
  const forget: JsonSchema =
    scopes.length > 1
      ? { title: "Forget", description: scope.description, anyOf: scopes }
      : { ...(scopes[0] ?? scope), title: "Forget", description: scope.description };
  const properties: Record<string, JsonSchema> = {};
  for (const [name, raw] of Object.entries(props)) {
    if (name === "judge" && family !== "ddpm") continue;
    if (name === "model_version_id") properties[name] = { type: "string", const: versionId };
    else if (name === "method") properties[name] = { type: "string", const: method.name };
    else if (name === "forget") properties[name] = forget;
    else if (name === "params") properties[name] = { ...(method.params_schema as JsonSchema), title: `Params of ${method.name}`, description: method.summary };
    else {
      // `X | None` where X is a single constant (reference: "retrain") is a choice, not fixed.
      const { schema, nullable } = unwrapSchema(raw);
      properties[name] = schema.const !== undefined && nullable ? { anyOf: [{ type: "string", enum: [schema.const] }, { type: "null" }], title: schema.title, description: schema.description } : raw;
    }
  }
  return { ...base, properties, required: [...new Set([...(base.required ?? []), "params"])] };
}

function UnlearnForm({ initialVersion }: { initialVersion: string }): ReactNode {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [versionId, setVersionId] = useState(initialVersion);
  const version = useVersion(versionId || null);
  const models = useAllModels();
  const family = models.data?.find((m) => m.id === version.data?.model_id)?.family;
  const methods = useMethods(family ?? null);
  const [methodName, setMethodName] = useState("");
  const method = methods.data?.find((m) => m.name === methodName);
  const schema = useMemo(() => (method && family && versionId ? unlearnSchema(BODIES.unlearn, method, family, versionId) : null), [method, family, versionId]);

  return (
    <>
      <div className="fields picker">
        <div className="field">
          <label htmlFor="unlearn-version" className="label">
            Model version *
          </label>
          <VersionChooser
            id="unlearn-version"
            invalid={false}
            describedBy={undefined}
            value={versionId}
            onChange={(v) => {
              setVersionId(v);
              setMethodName("");
            }}
          />
        </div>
        <div className="field">
          <label htmlFor="unlearn-method" className="label">
            Method *
          </label>
          <select id="unlearn-method" value={methodName} onChange={(e) => setMethodName(e.target.value)} disabled={!family || !methods.data}>
            <option value="">{!family ? "Choose a version first" : methods.isPending ? "Loading methods…" : "Choose a method"}</option>
            {(methods.data ?? []).map((m) => (
              <option key={m.name} value={m.name}>
                {m.name}
                {m.exact ? " (exact)" : ""} · {m.scopes.join(", ")}
              </option>
            ))}
          </select>
          {family && <span className="help">Methods for {family} models, from GET /methods.</span>}
        </div>
      </div>
      {methods.error !== null && <ErrorMessage error={methods.error} title="Could not load the methods" retry={() => void methods.refetch()} />}
      {version.error !== null && <ErrorMessage error={version.error} title="Could not load the version" />}
      {method && (
        <div className="card method-card" data-testid="method-card">
          <strong>{method.name}</strong> {method.exact ? <span className="badge state-succeeded">exact</span> : <span className="badge">approximate</span>}
          <p>{method.summary}</p>
          <p className="muted small">{method.paper}</p>
        </div>
      )}
      {versionId && family && methods.isPending && <Loading what="Loading methods" />}
      {schema && method ? (
        <SchemaForm
          key={`${versionId}-${method.name}`}
          label="Submit an unlearn job"
          schema={schema}
          order={["forget", "params", "evaluate", "reference"]}
          submitLabel="Submit unlearn job"
          onSubmit={async (value) => {
            const job = await unwrap(api.POST("/api/v1/jobs", { body: value as never }));
            void queryClient.invalidateQueries({ queryKey: ["jobs"] });
            navigate(`/jobs/${job.id}`);
          }}
        />
      ) : (
        !method && versionId && family && methods.data && <Empty>Choose a method to see its parameters.</Empty>
      )}
    </>
  );
}

export function JobSubmit(): ReactNode {
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const canWrite = useCan("write");
  const kind = KINDS.includes(params.get("kind") ?? "") ? params.get("kind")! : KINDS[0];
  const initial: Record<string, DraftValue> = Object.fromEntries(
    ["model_id", "dataset_id", "model_version_id", "parent_version_id"].filter((k) => params.get(k)).map((k) => [k, params.get(k)!]),
  );
  const models = useAllModels();
  // Training a model named in the URL: its family picks the params form.
  const urlModel = kind === "train" && typeof initial.model_id === "string" ? initial.model_id : null;
  const trainParams = urlModel ? trainParamsFor(models.data?.find((m) => m.id === urlModel)?.family) : null;
  if (trainParams) initial.params = trainParams;

  const carried = Object.fromEntries(Object.entries(initial).filter((e): e is [string, string] => typeof e[1] === "string"));

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
              onChange={() => setParams(new URLSearchParams({ ...carried, kind: k }), { replace: true })}
            />
            {k}
          </label>
        ))}
      </div>
      {schema.description && <p className="muted">{schema.description.split("\n\n")[0]}</p>}
      {kind === "unlearn" ? (
        <UnlearnForm initialVersion={String(initial.model_version_id ?? "")} />
      ) : urlModel && models.isPending ? (
        <Loading what="Loading the model" />
      ) : (
        <SchemaForm
          key={kind}
          label={`Submit a ${kind} job`}
          schema={schema}
          initial={initial}
          widgets={WIDGETS[kind] ?? {}}
          order={ORDER}
          submitLabel={`Submit ${kind} job`}
          onSubmit={async (value) => {
            const job = await unwrap(api.POST("/api/v1/jobs", { body: value as never }));
            void queryClient.invalidateQueries({ queryKey: ["jobs"] });
            navigate(kind === "generate" ? `/generations/${job.id}` : `/jobs/${job.id}`);
          }}
        />
      )}
    </section>
  );
}
