import { useQueryClient } from "@tanstack/react-query";
import { createContext, useContext, useMemo, useState, type ReactNode } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";

import { api, unwrap } from "../api/client";
import { familyNamed, judgeSchema, modelsOffering, paramsSchema, useFamilies, type Family, type ParamsKind } from "../api/families";
import { useMethods, type Method } from "../api/generations";
import { deref, discriminatedBodies, type JsonSchema } from "../api/openapi";
import { useAllDatasets, useAllModels, useDatasetVersions, useModelVersions, useVersion } from "../api/queries";
import type { Model } from "../api/types";
import { useCan } from "../auth";
import { Empty, ErrorMessage, Loading } from "../components/States";
import { SchemaForm, type WidgetProps, type Widgets } from "../forms/SchemaForm";
import { initialDraft, unwrap as unwrapSchema, type Draft, type DraftValue } from "../forms/schema";

const BODIES = discriminatedBodies("/api/v1/jobs", "post");
/** Every kind POST /jobs takes, in the API's order. */
export const KINDS = Object.keys(BODIES);

const PARAMS_KINDS: readonly string[] = ["train", "generate", "evaluate"] satisfies ParamsKind[];

/** A form's model pickers tell it which family the chosen model belongs to. */
const ChooseFamily = createContext<(family: string | undefined) => void>(() => undefined);

/** A fresh params draft for a `kind` job on a model of `family`, or null when it declares none. */
export function paramsDraft(family: Family | undefined, kind: ParamsKind): Draft | null {
  const schema = paramsSchema(family, kind);
  return schema ? initialDraft(schema) : null;
}

/** `forget` narrowed to the scopes that `allowed` names (the family's, or a method's). */
function forgetScopes(raw: JsonSchema, allowed: (scope: string) => boolean): { scope: JsonSchema; names: string[] } {
  const scope = deref(unwrapSchema(raw).schema);
  const entries = Object.entries(scope.properties ?? {}).filter(([name]) => allowed(name));
  return { scope: { ...scope, properties: Object.fromEntries(entries) }, names: entries.map(([name]) => name) };
}

/**
 * The body of a `kind` job on a model of `family`, from the declarations: `params` is
 * the family's own schema for that kind (none until a model is chosen), `judge` shows
 * only where a judge scores the family, and `forget` offers only the family's scopes.
 */
export function jobBody(base: JsonSchema, kind: string, family: Family | undefined): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  let required = base.required ?? [];
  for (const [name, raw] of Object.entries(base.properties ?? {})) {
    if (name === "params" && PARAMS_KINDS.includes(kind)) {
      const own = paramsSchema(family, kind as ParamsKind);
      // Evaluate params are shared until a family declares its own; train and generate
      // params are the family's, so they wait for the model.
      if (own) properties[name] = { ...own, title: raw.title ?? "Params" };
      else if (kind === "evaluate" && !family) properties[name] = raw;
      else required = required.filter((r) => r !== name);
    } else if (name === "judge") {
      const judge = judgeSchema(family);
      if (judge) properties[name] = { anyOf: [judge, { type: "null" }], title: "Judge", description: raw.description };
    } else if (name === "forget" && family) {
      const { scope } = forgetScopes(raw, (s) => family.scopes.includes(s));
      properties[name] = unwrapSchema(raw).nullable ? { anyOf: [scope, { type: "null" }], title: "Forget", description: raw.description } : scope;
    } else properties[name] = raw;
  }
  return { ...base, properties, required };
}

type SelectProps = Pick<WidgetProps, "id" | "invalid" | "describedBy">;
const selectProps = ({ id, invalid, describedBy }: SelectProps) => ({ id, "aria-invalid": invalid || undefined, "aria-describedby": describedBy });

/** Train: models whose family trains; choosing one also chooses its family's params form. */
function ModelSelect(props: WidgetProps): ReactNode {
  const { value, onChange, set } = props;
  const models = useAllModels();
  const families = useFamilies();
  const choose = useContext(ChooseFamily);
  const offered = (models.data ?? []).filter(modelsOffering(families.data, "train"));
  return (
    <select
      {...selectProps(props)}
      value={String(value ?? "")}
      onChange={(e) => {
        onChange(e.target.value);
        const family = familyNamed(families.data, models.data?.find((m) => m.id === e.target.value)?.family);
        choose(family?.name);
        set("params", paramsDraft(family, "train"));
      }}
    >
      <option value="">{models.isPending ? "Loading models…" : "Choose a model"}</option>
      {offered.map((m) => (
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

/** Evaluate: versions of models whose family evaluates; the family picks the params and judge. */
function EvaluateVersion(props: WidgetProps): ReactNode {
  const families = useFamilies();
  const choose = useContext(ChooseFamily);
  return (
    <VersionChooser
      {...props}
      value={String(props.value ?? "")}
      only={modelsOffering(families.data, "evaluate")}
      onModel={(model) => {
        const family = familyNamed(families.data, model?.family);
        choose(family?.name);
        const params = paramsDraft(family, "evaluate");
        if (params) props.set("params", params);
      }}
      onChange={(v) => props.onChange(v)}
    />
  );
}

/** Generate: versions of generating models; a fresh choice offers one image per class. */
function GenerateVersion(props: WidgetProps): ReactNode {
  const { set, draft } = props;
  const families = useFamilies();
  const choose = useContext(ChooseFamily);
  return (
    <VersionChooser
      {...props}
      value={String(props.value ?? "")}
      only={modelsOffering(families.data, "generate")}
      onModel={(model) => {
        const family = familyNamed(families.data, model?.family);
        choose(family?.name);
        set("params", paramsDraft(family, "generate"));
      }}
      onChange={(v, model) => {
        props.onChange(v);
        if (!v || !model) return;
        // A params form with labels starts with one image per class of the model.
        let params = (draft.params ?? paramsDraft(familyNamed(families.data, model.family), "generate") ?? {}) as Draft;
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
 * (from GET /methods), `forget` one of the scopes both the method and the family take (a
 * union, so the form offers the choice), the version and method fixed, and `judge` only
 * where the family declares a judge.
 */
export function unlearnSchema(base: JsonSchema, method: Method, family: Family, versionId: string): JsonSchema {
  const props = base.properties ?? {};
  const { scope, names } = forgetScopes(props.forget ?? {}, (s) => method.scopes.includes(s) && family.scopes.includes(s));
  const scopes = names.map((name) => ({ type: "object", title: SCOPE_TITLES[name] ?? name, properties: { [name]: scope.properties![name] }, required: [name] }) as JsonSchema);
  const forget: JsonSchema =
    scopes.length > 1
      ? { title: "Forget", description: scope.description, anyOf: scopes }
      : { ...(scopes[0] ?? scope), title: "Forget", description: scope.description };
  const judge = judgeSchema(family);
  const properties: Record<string, JsonSchema> = {};
  for (const [name, raw] of Object.entries(props)) {
    if (name === "judge") {
      if (judge) properties[name] = { anyOf: [judge, { type: "null" }], title: "Judge", description: raw.description };
    } else if (name === "model_version_id") properties[name] = { type: "string", const: versionId };
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
  const families = useFamilies();
  const familyDecl = familyNamed(families.data, models.data?.find((m) => m.id === version.data?.model_id)?.family);
  const family = familyDecl?.name;
  const methods = useMethods(family ?? null);
  const [methodName, setMethodName] = useState("");
  const method = methods.data?.find((m) => m.name === methodName);
  const schema = useMemo(() => (method && familyDecl && versionId ? unlearnSchema(BODIES.unlearn, method, familyDecl, versionId) : null), [method, familyDecl, versionId]);

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
            only={modelsOffering(families.data, "unlearn")}
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

/**
 * A train, evaluate or generate form. Its shape follows the chosen model's family (the
 * pickers tell it through ChooseFamily): a different family, a different params form.
 */
function JobForm({ kind, initial, initialFamily }: { kind: string; initial: Record<string, DraftValue>; initialFamily: string | undefined }): ReactNode {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const families = useFamilies();
  const [familyName, setFamilyName] = useState(initialFamily);
  const family = familyNamed(families.data, familyName);
  const schema = useMemo(() => jobBody(BODIES[kind], kind, family), [kind, family]);
  return (
    <ChooseFamily.Provider value={setFamilyName}>
      <SchemaForm
        label={`Submit a ${kind} job`}
        schema={schema}
        initial={initial}
        widgets={WIDGETS[kind] ?? {}}
        order={ORDER}
        submitLabel={`Submit ${kind} job`}
        onSubmit={async (value) => {
          const job = await unwrap(api.POST("/api/v1/jobs", { body: value as never }));
          void queryClient.invalidateQueries({ queryKey: ["jobs"] });
          // Images open in the generations gallery; text (a language model's completions)
          // on the job's own page.
          navigate(kind === "generate" && family?.data !== "text" ? `/generations/${job.id}` : `/jobs/${job.id}`);
        }}
      />
    </ChooseFamily.Provider>
  );
}

export function JobSubmit(): ReactNode {
  const [params, setParams] = useSearchParams();
  const canWrite = useCan("write");
  const kind = KINDS.includes(params.get("kind") ?? "") ? params.get("kind")! : KINDS[0];
  const initial: Record<string, DraftValue> = Object.fromEntries(
    ["model_id", "dataset_id", "model_version_id", "parent_version_id"].filter((k) => params.get(k)).map((k) => [k, params.get(k)!]),
  );
  const models = useAllModels();
  const families = useFamilies();
  // A model (train) or version (evaluate, generate) named in the URL: its family shapes the form.
  const urlModel = kind === "train" && typeof initial.model_id === "string" ? initial.model_id : null;
  const urlVersion = kind !== "train" && kind !== "unlearn" && typeof initial.model_version_id === "string" ? initial.model_version_id : null;
  const version = useVersion(urlVersion);
  const named = urlModel ?? version.data?.model_id ?? null;
  const family = familyNamed(families.data, models.data?.find((m) => m.id === named)?.family);
  const waiting = families.isPending || ((urlModel !== null || urlVersion !== null) && (models.isPending || (urlVersion !== null && version.isPending)));
  const own = family && PARAMS_KINDS.includes(kind) ? paramsDraft(family, kind as ParamsKind) : null;
  if (own) initial.params = own;

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
      {families.error !== null && <ErrorMessage error={families.error} title="Could not load the model families" retry={() => void families.refetch()} />}
      {kind === "unlearn" ? (
        <UnlearnForm initialVersion={String(initial.model_version_id ?? "")} />
      ) : waiting ? (
        families.error === null && <Loading what={families.isPending ? "Loading the model families" : "Loading the model"} />
      ) : (
        <JobForm key={kind} kind={kind} initial={initial} initialFamily={family?.name} />
      )}
    </section>
  );
}
