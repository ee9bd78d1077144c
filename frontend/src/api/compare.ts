/** Queries of the Compare page: jobs side by side, and one job's stored views. */
import { keepPreviousData, useQuery } from "@tanstack/react-query";

import { api, unwrap } from "./client";
import type { components } from "./schema";

type S = components["schemas"];
export type CompareRow = S["CompareRow"];
export type JobViews = S["JobViewsPublic"];
export type AtRiskSample = S["AtRiskSample"];
export type FeatureMapPoint = S["FeatureMapPoint"];

export function useCompare(ids: string[]) {
  return useQuery({
    queryKey: ["compare", ids],
    queryFn: () => unwrap(api.GET("/api/v1/compare", { params: { query: { jobs: ids.join(",") } } })),
    enabled: ids.length > 0,
    placeholderData: keepPreviousData,
  });
}

export function useJobViews(jobId: string | null) {
  return useQuery({
    queryKey: ["job-views", jobId],
    queryFn: () => unwrap(api.GET("/api/v1/jobs/{job_id}/views", { params: { path: { job_id: jobId as string } } })),
    enabled: Boolean(jobId),
    // Views are written once, when the evaluation succeeds: never stale after that.
    staleTime: Infinity,
  });
}
