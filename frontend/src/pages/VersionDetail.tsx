import { useMutation, useQuery } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Link, useParams } from "react-router";

import { api, fetchWithKey, saveBlob, unwrap } from "../api/client";
import { familyNamed, offers, useFamilies } from "../api/families";
import { useDataset, useJobs, useModel, useVersion } from "../api/queries";
import type { Lineage, ModelVersion } from "../api/types";
import { useCan } from "../auth";
import { Mono, ShortId, StateBadge } from "../components/Badges";
import { Facts, ObjectTable } from "../components/KeyValue";
import { LineageGraph } from "../components/LineageGraph";
import { Empty, ErrorMessage, QueryView } from "../components/States";
import { GridView, paramsSummary } from "./Generations";
import { bytes, Time } from "../components/Time";

function Download({ version }: { version: ModelVersion }): ReactNode {
  const download = useMutation({
    mutationFn: () =>
      unwrap<Blob>(
        api.GET("/api/v1/model-versions/{version_id}/checkpoint", {
          params: { path: { version_id: version.id } },
          parseAs: "blob",
        }),
      ),
    onSuccess: (blob) => saveBlob(blob, `${version.id}.safetensors`),
  });
  const gone = version.status === "purged";
  return (
    <>
      <button type="button" onClick={() => download.mutate()} disabled={download.isPending || gone} title={gone ? "This version's checkpoint was purged" : undefined}>
        {download.isPending ? "Downloading…" : `Download checkpoint (${bytes(version.size_bytes)})`}
      </button>
      {download.error && <ErrorMessage error={download.error} title="Download failed" />}
    </>
  );
}

function TrainingSet({ lineage }: { lineage: Lineage }): ReactNode {
  const ts = lineage.training_set;
  const dataset = useDataset(ts?.dataset_id);
  const ids = useMutation({
    mutationFn: async () => (await fetchWithKey(ts!.sample_ids_url!)).blob(),
    onSuccess: (blob) => saveBlob(blob, `${lineage.version.id}-sample-ids.txt`),
  });
  if (!ts) return <Empty>This version was uploaded, not trained here: it has no recorded training set.</Empty>;
  return (
    <>
      <Facts
        items={[
          ["Dataset", <Link to={`/datasets/${ts.dataset_id}`}>{dataset.data?.name ?? ts.dataset_id}</Link>],
          ["Dataset version", <>v{ts.dataset_version} <ShortId id={ts.dataset_version_id} /></>],
          ["Split", ts.split],
          ["Samples trained on", ts.count.toLocaleString()],
          ["Excluded samples", (ts.excluded_sample_ids ?? []).length.toLocaleString()],
          ["Content hash", <Mono>{ts.content_hash}</Mono>],
          ["Sample-id list sha256", ts.sample_ids_sha256 ? <Mono>{ts.sample_ids_sha256}</Mono> : null],
        ]}
      />
      {ts.sample_ids_url && (
        <button type="button" onClick={() => ids.mutate()} disabled={ids.isPending}>
          {ids.isPending ? "Downloading…" : "Download the sample-id list"}
        </button>
      )}
      {ids.error && <ErrorMessage error={ids.error} title="Download failed" />}
    </>
  );
}

/** A diffusion version's most recent successful generation, with its grid. */
function LatestGrid({ version }: { version: ModelVersion }): ReactNode {
  const jobs = useJobs({ kind: "generate", model_id: version.model_id, state: "succeeded" }, undefined, 100);
  return (
    <QueryView query={jobs} what="generations">
      {(page) => {
        const latest = page.data.find((j) => j.model_version_id === version.id);
        if (!latest) return <Empty>No generation of this version yet.</Empty>;
        return (
          <figure className="latest-grid" data-testid="latest-grid">
            <Link to={`/generations/${latest.id}`} aria-label={`Generation ${latest.id}`}>
              <GridView job={latest} width={360} />
            </Link>
            <figcaption className="muted small">
              {paramsSummary(latest.params)} · <Time value={latest.created_at} />
            </figcaption>
          </figure>
        );
      }}
    </QueryView>
  );
}

export function VersionDetail(): ReactNode {
  const { versionId = "" } = useParams();
  const version = useVersion(versionId);
  const model = useModel(version.data?.model_id);
  const families = useFamilies();
  const generates = offers(familyNamed(families.data, model.data?.family), "generate");
  const lineage = useQuery({
    queryKey: ["lineage", versionId],
    queryFn: () => unwrap(api.GET("/api/v1/model-versions/{version_id}/lineage", { params: { path: { version_id: versionId } } })),
  });
  const dataset = useDataset(lineage.data?.training_set?.dataset_id);
  const canWrite = useCan("write");
  return (
    <section>
      <p className="crumbs">
        <Link to="/models">Models</Link> / {model.data ? <Link to={`/models/${model.data.id}`}>{model.data.name}</Link> : "…"} /
      </p>
      <QueryView query={version} what="the model version">
        {(v) => (
          <>
            <div className="page-head">
              <h1>
                {model.data?.name ?? "Model"} v{v.version}
              </h1>
              <StateBadge state={v.status} />
              <Download version={v} />
              {canWrite && v.status !== "purged" && (
                <Link className="button" to={`/jobs/new?kind=evaluate&model_version_id=${v.id}`}>
                  Evaluate
                </Link>
              )}
              {canWrite && v.status === "active" && v.source !== "upload" && (
                <Link className="button" to={`/jobs/new?kind=unlearn&model_version_id=${v.id}`}>
                  Unlearn
                </Link>
              )}
              {canWrite && generates && v.status === "active" && (
                <Link className="button primary" to={`/jobs/new?kind=generate&model_version_id=${v.id}`}>
                  Generate
                </Link>
              )}
            </div>
            <div className="grid-2">
              <Facts
                items={[
                  ["Id", <Mono>{v.id}</Mono>],
                  ["sha256", <Mono>{v.sha256}</Mono>],
                  ["Size", bytes(v.size_bytes)],
                  ["Source", v.source],
                  ["Produced by", v.job_id ? <Link to={`/jobs/${v.job_id}`}><ShortId id={v.job_id} /></Link> : "upload"],
                  ["Parent", v.parent_version_id ? <Link to={`/versions/${v.parent_version_id}`}><ShortId id={v.parent_version_id} /></Link> : "none"],
                  ["Created", <Time value={v.created_at} />],
                ]}
              />
              <div>
                <h2 className="h3">Metrics</h2>
                <ObjectTable value={v.metrics} caption="Metrics" />
              </div>
            </div>
            {generates && (
              <>
                <div className="page-head">
                  <h2>Latest generation</h2>
                  <Link to={v.parent_version_id ? `/generations/compare?a=${v.parent_version_id}&b=${v.id}` : `/generations/compare?a=${v.id}`}>
                    Before / after {v.parent_version_id ? "against its parent" : ""} →
                  </Link>
                </div>
                <LatestGrid version={v} />
              </>
            )}
            <h2>Lineage</h2>
            <QueryView query={lineage} what="lineage">
              {(l) => (
                <>
                  <LineageGraph lineage={l} datasetName={dataset.data?.name} />
                  <h3>Training set</h3>
                  <TrainingSet lineage={l} />
                </>
              )}
            </QueryView>
            <details>
              <summary>Checkpoint config</summary>
              <ObjectTable value={v.config} caption="Checkpoint config" />
            </details>
          </>
        )}
      </QueryView>
    </section>
  );
}
