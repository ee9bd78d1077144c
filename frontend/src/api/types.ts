/** Short names for the generated schema types the pages use. */
import type { components } from "./schema";

type S = components["schemas"];
export type Job = S["JobPublic"];
export type JobsPage = S["JobsPublic"];
export type JobEvent = S["JobEventPublic"];
export type JobMetrics = S["JobMetricsPublic"];
export type MetricPoint = S["MetricPoint"];
export type Dataset = S["DatasetPublic"];
export type DatasetVersion = S["DatasetVersionPublic"];
export type Sample = S["SamplePublic"];
export type Source = S["SourcePublic"];
export type Model = S["ModelPublic"];
export type ModelVersion = S["ModelVersionPublic"];
export type Lineage = S["LineagePublic"];
export type Key = S["KeyPublic"];
export type KeyCreated = S["KeyCreated"];
export type Health = S["HealthPublic"];
export type Check = S["Check"];
export type TrainJobCreate = S["TrainJobCreate"];
export type EvaluateJobCreate = S["EvaluateJobCreate"];
export type ModelCreate = S["ModelCreate"];
export type DatasetCreate = S["DatasetCreate"];
export type KeyCreate = S["KeyCreate"];

export type Role = "admin" | "compliance" | "engineer" | "viewer";

export type DeletionRequest = S["DeletionRequestPublic"];
export type DeletionRequestsPage = S["DeletionRequestsPublic"];
export type DeletionItem = S["DeletionItemPublic"];
export type DeletionRequestCreate = S["DeletionRequestCreate"];
export type DeletionPreview = S["DeletionPreviewPublic"];
export type AuditEvent = S["AuditEventPublic"];
export type Checkpoint = S["CheckpointPublic"];
export type VerifyReport = S["VerifyReportPublic"];
export type InclusionProof = S["InclusionProofPublic"];
export type Webhook = S["WebhookPublic"];
export type WebhookCreate = S["WebhookCreate"];
export type WebhookCreated = S["WebhookCreated"];
export type Delivery = S["DeliveryPublic"];

/** One entry of GET /deletion-requests/{id}/timeline (the API types it loosely). */
export type TimelineEntry = { seq: number; at: string; actor: string; action: string; payload: Record<string, unknown> | null; hash: string };

/** What a plan item says (the API keeps the plan as free-form objects). */
export type PlanItem = {
  item_id?: string;
  model_version_id: string;
  model_id?: string;
  method: string;
  exact: boolean;
  fallback?: string | null;
  estimated_seconds?: number | null;
  retrain_seconds?: number | null;
  note?: string | null;
  /** The attempt priced against the retrain (approximate classifier items with a recipe). */
  cost?: PlanCost | null;
};

/** Estimated cost vs the retrain, the chance the attempt fails, and the plan's choice. */
export type PlanCost = {
  method: string;
  estimate_fraction: number;
  p_fail: number;
  verdicts: number;
  failures: number;
  history: "model" | "family";
  expected_fraction: number;
  max_cost_fraction: number | null;
  choice: "attempt" | "exact";
  reason: string;
};
