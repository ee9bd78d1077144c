import { useMutation } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Link, useParams, useSearchParams } from "react-router";

import { saveBlob } from "../api/client";
import { modelsOffering, useFamilies } from "../api/families";
import { generatedImages, hasArtifact, useArtifact } from "../api/generations";
import { isActive, useAllModels, useJob, useJobs } from "../api/queries";
import type { Job } from "../api/types";
import { useCan } from "../auth";
import { ArtifactImage } from "../components/ArtifactImage";
import { Progress, ShortId, StateBadge } from "../components/Badges";
import { Facts, ObjectTable } from "../components/KeyValue";
import { Pager, useCursorPager } from "../components/Pager";
import { Empty, ErrorMessage, QueryView } from "../components/States";
import { Completions, completionsOf } from "../components/TextResults";
import { duration, Time } from "../components/Time";
import { useJobLive } from "../live/useJobLive";

/** "10 images · ddim 50 steps · guidance 3 · seed 0" from a generate job's params. */
export function paramsSummary(params: Record<string, unknown>): string {
  const items = (Array.isArray(params.labels) ? params.labels : Array.isArray(params.prompts) ? params.prompts : []) as unknown[];
  const parts = [`${items.length} image${items.length === 1 ? "" : "s"}`];
  if (params.scheduler) parts.push(`${String(params.scheduler)} ${String(params.num_inference_steps ?? "")} steps`.trim());
  if (params.guidance_scale !== undefined) parts.push(`guidance ${String(params.guidance_scale)}`);
  parts.push(Array.isArray(params.seeds) && params.seeds.length ? "own seeds" : `seed ${String(params.seed ?? 0)}`);
  return parts.join(" · ");
}

/** The grid of a generate job, or why there is none yet. */
export function GridView({ job, width, alt }: { job: Job; width?: number; alt?: string }): ReactNode {
  if (job.state === "succeeded" && hasArtifact(job, "grid.png")) {
    return <ArtifactImage jobId={job.id} name="grid.png" alt={alt ?? `Image grid of generation ${job.id}`} width={width} className="grid-image" />;
  }
  if (isActive(job)) {
    return (
      <div className="grid-pending" style={width ? { width } : undefined}>
        <StateBadge state={job.state} /> <Progress value={job.progress} label={`Progress of ${job.id}`} />
      </div>
    );
  }
  return (
    <div className="grid-pending" style={width ? { width } : undefined}>
      <StateBadge state={job.state} /> <span className="small">{job.error ?? "no grid"}</span>
    </div>
  );
}

export function Generations(): ReactNode {
  const [params, setParams] = useSearchParams();
  const modelId = params.get("model_id") || undefined;
  const pager = useCursorPager(modelId ?? "");
  const jobs = useJobs({ kind: "generate", model_id: modelId }, pager.cursor, 12);
  const models = useAllModels();
  const families = useFamilies();
  const names = new Map((models.data ?? []).map((m) => [m.id, m.name]));
  const canWrite = useCan("write");
  return (
    <section>
      <div className="page-head">
        <h1>Generations</h1>
        <Link className="button" to="/generations/compare">
          Before / after
        </Link>
        {canWrite && (
          <Link className="button primary" to="/jobs/new?kind=generate">
            Generate images
          </Link>
        )}
      </div>
      <p className="muted">Image grids of generate jobs. Same version, seeds and settings give the same images.</p>
      <form className="filters" role="search" aria-label="Filter generations" onSubmit={(e) => e.preventDefault()}>
        <label>
          Model
          <select
            value={modelId ?? ""}
            onChange={(e) => setParams(e.target.value ? new URLSearchParams({ model_id: e.target.value }) : new URLSearchParams(), { replace: true })}
          >
            <option value="">any</option>
            {(models.data ?? [])
              .filter(modelsOffering(families.data, "generate"))
              .map((m) => (
                <option key={m.id} value={m.id}>
                  {m.name}
                </option>
              ))}
          </select>
        </label>
      </form>
      <QueryView query={jobs} what="generations">
        {(page) =>
          page.data.length ? (
            <>
              <ul className="generations" aria-label="Generations">
                {page.data.map((job) => (
                  <li key={job.id} className="generation-card">
                    <Link to={`/generations/${job.id}`} className="generation-link" aria-label={`Generation ${job.id}`}>
                      <GridView job={job} width={200} />
                    </Link>
                    <div className="small">
                      <strong>{job.model_id ? (names.get(job.model_id) ?? <ShortId id={job.model_id} />) : "—"}</strong>{" "}
                      {job.model_version_id && (
                        <Link to={`/versions/${job.model_version_id}`}>
                          <ShortId id={job.model_version_id} />
                        </Link>
                      )}
                    </div>
                    <div className="muted small">{paramsSummary(job.params)}</div>
                    <div className="muted small">
                      <Time value={job.created_at} />
                    </div>
                  </li>
                ))}
              </ul>
              <Pager label="Generations" page={pager.page} nextCursor={page.next_cursor} onNext={pager.next} onPrev={pager.prev} />
            </>
          ) : (
            <Empty>
              No generate jobs{modelId ? " for this model" : ""} yet.{canWrite ? " Generate images from a diffusion model version." : ""}
            </Empty>
          )
        }
      </QueryView>
    </section>
  );
}

function DownloadArtifact({ job, name, label, ariaLabel }: { job: Job; name: string; label: string; ariaLabel?: string }): ReactNode {
  const blob = useArtifact(job.id, name, false);
  const download = useMutation({
    mutationFn: async () => (await blob.refetch({ throwOnError: true })).data!,
    onSuccess: (data) => saveBlob(data, `${job.id}-${name}`),
  });
  return (
    <>
      <button type="button" onClick={() => download.mutate()} disabled={download.isPending} aria-label={ariaLabel}>
        {download.isPending ? "Downloading…" : label}
      </button>
      {download.error && <ErrorMessage error={download.error} title={`Could not download ${name}`} />}
    </>
  );
}

function GenerationBody({ job }: { job: Job }): ReactNode {
  const live = useJobLive(job.id, job);
  const images = generatedImages(job);
  const models = useAllModels();
  const model = models.data?.find((m) => m.id === job.model_id);
  const params = job.params as Record<string, unknown>;
  // A language model's generation is text: its prompts and completions, no images.
  const completions = completionsOf(job);
  return (
    <>
      <div className="page-head">
        <h1>
          Generation <ShortId id={job.id} />
        </h1>
        <span aria-live="polite">
          <StateBadge state={job.state} />
          {isActive(job) && live.status === "open" && <span className="live live-open">live</span>}
        </span>
        {job.state === "succeeded" && (
          <>
            <DownloadArtifact job={job} name="grid.png" label="Download grid" />
            <DownloadArtifact job={job} name="manifest.json" label="Download manifest" />
          </>
        )}
        {job.model_version_id && (
          <Link className="button" to={`/generations/compare?a=${job.model_version_id}`}>
            Before / after…
          </Link>
        )}
      </div>
      {job.error && <ErrorMessage error={new Error(job.error)} title="The job failed" />}
      <div className="grid-2">
        <div>
          <GridView job={job} width={480} />
        </div>
        <Facts
          items={[
            ["Model", job.model_id ? <Link to={`/models/${job.model_id}`}>{model?.name ?? job.model_id}</Link> : null],
            ["Version", job.model_version_id ? <Link to={`/versions/${job.model_version_id}`}><ShortId id={job.model_version_id} /></Link> : null],
            ["Request", paramsSummary(params)],
            ["Job", <Link to={`/jobs/${job.id}`}>job page (log, timeline) →</Link>],
            ["Created", <Time value={job.created_at} />],
            ["Wall time", duration(job.wall_seconds)],
            ["Progress", <Progress value={job.progress} label="Generation progress" />],
          ]}
        />
      </div>
      {completions !== null ? (
        <>
          <h2>Completions</h2>
          <Completions items={completions} />
        </>
      ) : (
        <h2>Images</h2>
      )}
      {completions !== null ? null : images.length ? (
        <ul className="generated" aria-label="Generated images">
          {images.map((img) => (
            <li key={img.name}>
              <ArtifactImage jobId={job.id} name={img.name} alt={`${img.prompt ?? `label ${img.label}`}, seed ${img.seed}`} width={96} />
              <span className="small">
                {img.prompt !== null ? <q>{img.prompt}</q> : <>label {img.label ?? "?"}</>} · seed {img.seed ?? "?"}
              </span>
              <DownloadArtifact job={job} name={img.name} label="Download" ariaLabel={`Download ${img.name}`} />
            </li>
          ))}
        </ul>
      ) : (
        <Empty>{isActive(job) ? "The images appear when the job succeeds." : "This job stored no images."}</Empty>
      )}
      <h2>Parameters</h2>
      <ObjectTable value={params} caption="Generation parameters" />
    </>
  );
}

export function GenerationDetail(): ReactNode {
  const { jobId = "" } = useParams();
  const job = useJob(jobId);
  return (
    <section>
      <p className="crumbs">
        <Link to="/generations">Generations</Link> /
      </p>
      <QueryView query={job} what="the generation">
        {(j) => (j.kind === "generate" ? <GenerationBody key={j.id} job={j} /> : <ErrorMessage error={new Error(`job ${j.id} is a ${j.kind} job, not a generation`)} title="Not a generation" />)}
      </QueryView>
    </section>
  );
}
