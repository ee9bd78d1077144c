/** TanStack Query hooks over the typed client: one key scheme for the whole app. */
import { keepPreviousData, useQuery } from "@tanstack/react-query";

import { api, unwrap } from "./client";
import type { Job } from "./types";

const ACTIVE = new Set(["queued", "running", "cancelling", "lost"]);

export const isActive = (job: Pick<Job, "state">) => ACTIVE.has(job.state);

export type JobFilters = { kind?: string; state?: string; model_id?: string; dataset_id?: string };

export function useHealth() {
  return useQuery({
    queryKey: ["health"],
    queryFn: () => unwrap(api.GET("/api/v1/health")),
    refetchInterval: 10_000,
  });
}

export function useJobs(filters: JobFilters, cursor?: string, limit = 25) {
  return useQuery({
    queryKey: ["jobs", filters, cursor, limit],
    queryFn: () => unwrap(api.GET("/api/v1/jobs", { params: { query: { ...filters, cursor, limit } } })),
    placeholderData: keepPreviousData,
    // While anything listed is still moving, keep the list fresh.
    refetchInterval: (q) => (q.state.data?.data.some(isActive) ? 3_000 : 15_000),
  });
}

export function useJob(jobId: string) {
  return useQuery({
    queryKey: ["job", jobId],
    queryFn: () => unwrap(api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: jobId } } })),
    // The event stream keeps an open page current; this is the fallback if it drops.
    refetchInterval: (q) => (q.state.data && isActive(q.state.data) ? 10_000 : false),
  });
}

export function useDatasets(cursor?: string, limit = 25) {
  return useQuery({
    queryKey: ["datasets", cursor, limit],
    queryFn: () => unwrap(api.GET("/api/v1/datasets", { params: { query: { cursor, limit } } })),
    placeholderData: keepPreviousData,
  });
}

/** Every dataset (for pickers); follows next_cursor. */
export function useAllDatasets() {
  return useQuery({
    queryKey: ["datasets", "all"],
    queryFn: async () => {
      const out = [];
      let cursor: string | undefined;
      for (let i = 0; i < 20; i++) {
        const page = await unwrap(api.GET("/api/v1/datasets", { params: { query: { cursor, limit: 200 } } }));
        out.push(...page.data);
        if (!page.next_cursor) break;
        cursor = page.next_cursor;
      }
      return out;
    },
  });
}

export function useDataset(datasetId: string | null | undefined) {
  return useQuery({
    queryKey: ["dataset", datasetId],
    queryFn: () => unwrap(api.GET("/api/v1/datasets/{dataset_id}", { params: { path: { dataset_id: datasetId! } } })),
    enabled: Boolean(datasetId),
    staleTime: 60_000,
  });
}

export function useModels(cursor?: string, limit = 25) {
  return useQuery({
    queryKey: ["models", cursor, limit],
    queryFn: () => unwrap(api.GET("/api/v1/models", { params: { query: { cursor, limit } } })),
    placeholderData: keepPreviousData,
  });
}

export function useAllModels() {
  return useQuery({
    queryKey: ["models", "all"],
    queryFn: async () => {
      const out = [];
      let cursor: string | undefined;
      for (let i = 0; i < 20; i++) {
        const page = await unwrap(api.GET("/api/v1/models", { params: { query: { cursor, limit: 200 } } }));
        out.push(...page.data);
        if (!page.next_cursor) break;
        cursor = page.next_cursor;
      }
      return out;
    },
  });
}

export function useModel(modelId: string | null | undefined) {
  return useQuery({
    queryKey: ["model", modelId],
    queryFn: () => unwrap(api.GET("/api/v1/models/{model_id}", { params: { path: { model_id: modelId! } } })),
    enabled: Boolean(modelId),
    staleTime: 30_000,
  });
}

export function useModelVersions(modelId: string | null | undefined, status?: string, cursor?: string, limit = 25) {
  return useQuery({
    queryKey: ["model-versions", modelId, status, cursor, limit],
    queryFn: () =>
      unwrap(api.GET("/api/v1/models/{model_id}/versions", { params: { path: { model_id: modelId! }, query: { status, cursor, limit } } })),
    enabled: Boolean(modelId),
    placeholderData: keepPreviousData,
  });
}

export function useVersion(versionId: string | null | undefined) {
  return useQuery({
    queryKey: ["version", versionId],
    queryFn: () => unwrap(api.GET("/api/v1/model-versions/{version_id}", { params: { path: { version_id: versionId! } } })),
    enabled: Boolean(versionId),
  });
}

export function useDatasetVersions(datasetId: string | null | undefined) {
  return useQuery({
    queryKey: ["dataset-versions", datasetId],
    queryFn: () => unwrap(api.GET("/api/v1/datasets/{dataset_id}/versions", { params: { path: { dataset_id: datasetId! } } })),
    enabled: Boolean(datasetId),
  });
}
