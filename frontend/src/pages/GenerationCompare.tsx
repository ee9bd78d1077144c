import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useMemo, useState, type ReactNode } from "react";
import { Link, useSearchParams } from "react-router";

import { api, unwrap } from "../api/client";
import { familyNamed, modelsOffering, paramsSchema as familyParams, useFamilies } from "../api/families";
import { findGeneration, generatedImages, generationKey, schemaDefaults } from "../api/generations";
import { useAllModels, useJob, useModelVersions, useVersion } from "../api/queries";
import type { Job, ModelVersion } from "../api/types";
import { useCan } from "../auth";
import { ArtifactImage } from "../components/ArtifactImage";
import { ShortId, StateBadge } from "../components/Badges";
import { Empty, ErrorMessage, Loading, QueryView } from "../components/States";
import { SchemaForm } from "../forms/SchemaForm";
import { useJobLive } from "../live/useJobLive";
import { GridView, paramsSummary } from "./Generations";

type Side = "a" | "b";
const SIDE_TITLE: Record<Side, string> = { a: "Before", b: "After" };

function versionLabel(v: ModelVersion | undefined): string {
  return v ? `v${v.version} · ${v.source}${v.status !== "active" ? ` · ${v.status}` : ""}` : "…";
}

/** One side: its generate job followed live, and its grid when done. */
function SidePanel({ side, jobId, version, note }: { side: Side; jobId: string; version: ModelVersion | undefined; note?: string }): ReactNode {
  const job = useJob(jobId);
  return (
    <section className="compare-side" aria-labelledby={`side-${side}`} data-testid={`side-${side}`}>
      <h2 id={`side-${side}`}>
        {SIDE_TITLE[side]}: {versionLabel(version)}
      </h2>
      <QueryView query={job} what="the generation">
        {(j) => <LiveSide job={j} note={note} side={side} />}
      </QueryView>
    </section>
  );
}

function LiveSide({ job, note, side }: { job: Job; note?: string; side: Side }): ReactNode {
  useJobLive(job.id, job);
  return (
    <>
      <p className="small">
        <StateBadge state={job.state} /> <Link to={`/generations/${job.id}`}>generation <ShortId id={job.id} /></Link>
        {note && <span className="muted"> · {note}</span>}
      </p>
      <GridView job={job} width={420} alt={`${SIDE_TITLE[side]}: image grid of generation ${job.id}`} />
    </>
  );
}

/** Image i of both sides next to each other, with its label (or prompt) and seed. */
function Pairs({ a, b }: { a: string; b: string }): ReactNode {
  const ja = useJob(a);
  const jb = useJob(b);
  if (ja.data?.state !== "succeeded" || jb.data?.state !== "succeeded") return null;
  const left = generatedImages(ja.data);
  const right = generatedImages(jb.data);
  return (
    <details className="pairs">
      <summary>Image by image ({left.length})</summary>
      <ul className="generated" aria-label="Image pairs">
        {left.map((img, i) => (
          <li key={img.name}>
            <span className="pair-images">
              <ArtifactImage jobId={a} name={img.name} alt={`before, ${img.prompt ?? `label ${img.label}`}, seed ${img.seed}`} width={64} />
              {right[i] && <ArtifactImage jobId={b} name={right[i].name} alt={`after, ${img.prompt ?? `label ${img.label}`}, seed ${img.seed}`} width={64} />}
            </span>
            <span className="small">
              {img.prompt !== null ? <q>{img.prompt}</q> : <>label {img.label}</>} · seed {img.seed}
            </span>
          </li>
        ))}
      </ul>
    </details>
  );
}

function VersionSelect({ id, label, versions, value, onChange }: { id: string; label: string; versions: ModelVersion[]; value: string; onChange: (v: string) => void }): ReactNode {
  return (
    <div className="field">
      <label htmlFor={id} className="label">
        {label}
      </label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">Choose a version</option>
        {versions.map((v) => (
          <option key={v.id} value={v.id} disabled={v.status === "purged" || v.status === "tainted"}>
            {versionLabel(v)}
            {v.parent_version_id ? ` (from ${versions.find((p) => p.id === v.parent_version_id) ? `v${versions.find((p) => p.id === v.parent_version_id)!.version}` : "another version"})` : ""}
          </option>
        ))}
      </select>
    </div>
  );
}

export function GenerationCompare(): ReactNode {
  const [params, setParams] = useSearchParams();
  const queryClient = useQueryClient();
  const canWrite = useCan("write");
  const a = params.get("a") ?? "";
  const b = params.get("b") ?? "";
  const ja = params.get("ja") ?? "";
  const jb = params.get("jb") ?? "";
  const va = useVersion(a || null);
  const vb = useVersion(b || null);
  const [pickedModel, setPickedModel] = useState("");
  const modelId = pickedModel || va.data?.model_id || vb.data?.model_id || "";
  const models = useAllModels();
  const families = useFamilies();
  const generating = modelsOffering(families.data, "generate");
  const model = models.data?.find((m) => m.id === modelId);
  const versions = useModelVersions(modelId || null, undefined, undefined, 200);
  const list = versions.data?.data ?? [];
  // A version made a moment ago (the unlearning just finished) must be in the list.
  const refetchVersions = versions.refetch;
  useEffect(() => {
    if (modelId) void refetchVersions();
  }, [modelId, refetchVersions]);
  const [notes, setNotes] = useState<Record<Side, string>>({ a: "", b: "" });
  const [missing, setMissing] = useState<string | null>(null);

  const update = (patch: Record<string, string>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(patch)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    // New versions: the shown jobs no longer belong to them.
    if ("a" in patch || "b" in patch) {
      next.delete("ja");
      next.delete("jb");
    }
    setParams(next, { replace: true });
  };

  // The newest version unlearned from "before" is the natural "after", and the other way round.
  const childOf = (id: string) => list.filter((v) => v.parent_version_id === id && v.status !== "purged").sort((x, y) => y.version - x.version)[0]?.id ?? "";
  const parentOf = (id: string) => list.find((v) => v.id === id)?.parent_version_id ?? "";
  const chooseA = (id: string) => update({ a: id, b: b || childOf(id) });
  const chooseB = (id: string) => update({ b: id, a: a || parentOf(id) });
  // A link that names one side (a version page's "Before / after") gets the other filled in.
  const pairKey = list.length ? `${a}|${b}|${list.map((v) => v.id).join(",")}` : "";
  useEffect(() => {
    if (!pairKey) return;
    if (a && !b && childOf(a)) update({ b: childOf(a) });
    else if (b && !a && parentOf(b)) update({ a: parentOf(b) });
  }, [pairKey]);

  const numClasses = Number(model?.architecture.num_classes ?? 0);
  // The generate params the model's family declares (labels, prompts, ...).
  const paramsSchema = familyParams(familyNamed(families.data, model?.family), "generate");
  const defaults = useMemo(() => (paramsSchema ? schemaDefaults(paramsSchema) : {}), [paramsSchema]);
  const initial = useMemo(() => {
    const start: Record<string, string> = {};
    if (paramsSchema?.properties?.labels && numClasses > 0) start.labels = Array.from({ length: Math.min(numClasses, 64) }, (_, i) => i).join(", ");
    return start;
  }, [numClasses, paramsSchema]);

  const run = async (value: Record<string, unknown>) => {
    setMissing(null);
    const key = generationKey(value, defaults);
    const found: Record<Side, string> = { a: "", b: "" };
    const note: Record<Side, string> = { a: "", b: "" };
    for (const [side, versionId] of [["a", a], ["b", b]] as [Side, string][]) {
      const existing = await findGeneration(modelId, versionId, key, defaults);
      if (existing) {
        found[side] = existing.id;
        note[side] = "reused an earlier generation with the same request";
      } else if (canWrite) {
        const job = await unwrap(api.POST("/api/v1/jobs", { body: { kind: "generate", model_version_id: versionId, params: value } as never }));
        found[side] = job.id;
        note[side] = "generating now";
      } else {
        setMissing(`No earlier generation on ${SIDE_TITLE[side].toLowerCase()} version ${versionId} has these settings; an engineer or admin can run one.`);
        return;
      }
    }
    setNotes(note);
    void queryClient.invalidateQueries({ queryKey: ["jobs"] });
    update({ ja: found.a, jb: found.b });
  };

  return (
    <section>
      <p className="crumbs">
        <Link to="/generations">Generations</Link> /
      </p>
      <h1>Before / after</h1>
      <p className="muted">
        The same labels or prompts, seeds and sampler on two versions of one model — typically a diffusion model and its unlearned child. Earlier
        generations with an identical request are reused.
      </p>
      <div className="fields picker">
        <div className="field">
          <label htmlFor="compare-model" className="label">
            Model
          </label>
          <select
            id="compare-model"
            value={modelId}
            onChange={(e) => {
              setPickedModel(e.target.value);
              setParams(new URLSearchParams(), { replace: true });
            }}
          >
            <option value="">{models.isPending ? "Loading models…" : "Choose a model"}</option>
            {(models.data ?? [])
              .filter(generating)
              .map((m) => (
                <option key={m.id} value={m.id}>
                  {m.name} ({m.family})
                </option>
              ))}
          </select>
        </div>
        <VersionSelect id="compare-a" label="Before (version)" versions={list} value={a} onChange={chooseA} />
        <VersionSelect id="compare-b" label="After (version)" versions={list} value={b} onChange={chooseB} />
      </div>
      {versions.error !== null && <ErrorMessage error={versions.error} title="Could not load the versions" retry={() => void versions.refetch()} />}
      {models.data && families.data && !models.data.some(generating) && <Empty>No model that generates is registered yet.</Empty>}
      {a && b && a === b && <p className="form-error">Choose two different versions.</p>}
      {a && b && a !== b && model && paramsSchema && (
        <SchemaForm
          key={`${modelId}-${numClasses}-${model.family}`}
          label="Generation settings"
          schema={paramsSchema}
          initial={initial}
          hidden={["device", "batch_size"]}
          order={["labels", "prompts", "seeds", "seed", "guidance_scale", "num_inference_steps", "scheduler"]}
          submitLabel={canWrite ? "Generate on both (or reuse)" : "Find earlier generations"}
          onSubmit={run}
        />
      )}
      {a && b && (!model || !families.data) && modelId && <Loading what="Loading the model" />}
      {missing && <Empty>{missing}</Empty>}
      {ja && jb ? (
        <>
          <div className="compare-grid" data-testid="before-after">
            <SidePanel side="a" jobId={ja} version={va.data} note={notes.a} />
            <SidePanel side="b" jobId={jb} version={vb.data} note={notes.b} />
          </div>
          <Pairs a={ja} b={jb} />
          <SameRequest a={ja} b={jb} defaults={defaults} />
        </>
      ) : (
        a && b && a !== b && <Empty>Set the request and run it: both grids appear here side by side.</Empty>
      )}
    </section>
  );
}

/** Says so when the two shown jobs were not made with the same request (e.g. a shared link edited by hand). */
function SameRequest({ a, b, defaults }: { a: string; b: string; defaults: Record<string, unknown> }): ReactNode {
  const ja = useJob(a);
  const jb = useJob(b);
  if (!ja.data || !jb.data) return null;
  const same = generationKey(ja.data.params, defaults) === generationKey(jb.data.params, defaults);
  return (
    <p className={same ? "muted small" : "form-error"}>
      {same ? `Same request on both: ${paramsSummary(ja.data.params)}.` : "These two generations were not made with the same request; the grids are not comparable image by image."}
    </p>
  );
}
