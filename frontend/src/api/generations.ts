/**
 * Generation jobs as the dashboard needs them: their images (from `job.artifacts`),
 * the artifacts as blobs through the typed client, the unlearning methods, and
 * finding an earlier generate job with the same request so a before/after view reuses
 * it instead of computing the same bytes again (same seeds and settings, same PNGs).
 */
import { useQuery } from "@tanstack/react-query";

import { api, unwrap } from "./client";
import type { JsonSchema } from "./openapi";
import type { Job } from "./types";
import type { components } from "./schema";

export type Method = components["schemas"]["MethodPublic"];

/** The schema's defaults, so a request compares equal to a stored job's full params. */
export function schemaDefaults(schema: JsonSchema): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(schema.properties ?? {})
      .filter(([, s]) => s.default !== undefined)
      .map(([k, s]) => [k, s.default]),
  );
}

/** One generated image as the job lists it (`image-0003.png`, its label and seed). */
export type GeneratedImage = { name: string; label: number | null; prompt: string | null; seed: number | null; sha256: string | null };

export function generatedImages(job: Pick<Job, "artifacts">): GeneratedImage[] {
  return job.artifacts
    .filter((a) => typeof a.name === "string" && /^image-\d+\.png$/.test(a.name))
    .map((a) => ({
      name: String(a.name),
      label: typeof a.label === "number" ? a.label : null,
      prompt: typeof a.prompt === "string" ? a.prompt : null,
      seed: typeof a.seed === "number" ? a.seed : null,
      sha256: typeof a.sha256 === "string" ? a.sha256 : null,
    }));
}

export const hasArtifact = (job: Pick<Job, "artifacts">, name: string) => job.artifacts.some((a) => a.name === name);

/** An artifact's bytes (immutable once the job lists it, so cached for good). */
export function useArtifact(jobId: string, name: string, enabled = true) {
  return useQuery({
    queryKey: ["artifact", jobId, name],
    queryFn: ({ signal }) =>
      unwrap<Blob>(api.GET("/api/v1/jobs/{job_id}/artifacts/{name}", { params: { path: { job_id: jobId, name } }, parseAs: "blob", signal })),
    enabled,
    staleTime: Infinity,
    gcTime: 5 * 60_000,
  });
}

export function useMethods(family?: string | null) {
  return useQuery({
    queryKey: ["methods", family ?? null],
    queryFn: () => unwrap(api.GET("/api/v1/methods", { params: { query: family ? { family } : {} } })),
    staleTime: 5 * 60_000,
  });
}

/** Settings that do not change the images (where and how many at once they are computed). */
const NOT_IN_IMAGE = new Set(["batch_size", "device"]);

/**
 * A request's identity: what decides the pixels. Defaults are filled in as the API
 * stores them (job.params is the full validated GenerateParams), and `seeds` defaults to
 * `seed + i` per image, so an explicit `seeds` list and the same `seed` compare equal.
 */
export function generationKey(params: Record<string, unknown>, defaults: Record<string, unknown> = {}): string {
  const p: Record<string, unknown> = { ...defaults, ...params };
  const items = (Array.isArray(p.labels) ? p.labels : Array.isArray(p.prompts) ? p.prompts : []) as unknown[];
  const seed = typeof p.seed === "number" ? p.seed : 0;
  const seeds = Array.isArray(p.seeds) && p.seeds.length ? p.seeds : items.map((_, i) => seed + i);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(p).sort()) {
    if (NOT_IN_IMAGE.has(k) || k === "seed" || k === "seeds") continue;
    if (p[k] === null || p[k] === undefined) continue;
    out[k] = p[k];
  }
  out.seeds = seeds;
  return JSON.stringify(out);
}

const REUSABLE = new Set(["queued", "running", "succeeded"]);

/**
 * The newest generate job on `versionId` whose request has the same key and that has
 * not failed (a running one is watched rather than started twice). Looks through the
 * model's generate jobs, newest first, a few pages at most.
 */
export async function findGeneration(modelId: string, versionId: string, key: string, defaults: Record<string, unknown>): Promise<Job | null> {
  let cursor: string | undefined;
  for (let page = 0; page < 5; page++) {
    const jobs = await unwrap(api.GET("/api/v1/jobs", { params: { query: { kind: "generate", model_id: modelId, cursor, limit: 200 } } }));
    const hit = jobs.data.find((j) => j.model_version_id === versionId && REUSABLE.has(j.state) && generationKey(j.params, defaults) === key);
    if (hit) return hit;
    if (!jobs.next_cursor) return null;
    cursor = jobs.next_cursor;
  }
  return null;
}
