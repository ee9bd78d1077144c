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
  /** The strong membership test's shadow models: their one-off cost, or the bank reused. */
  shadows?: PlanShadows | null;
  /** A language model's lineage: its base, and whether the base can have seen the data. */
  lineage?: PlanLineage | null;
};

/** core/deletion/lm.py: a causal_lm version's base and fine-tune, as the plan states them. */
export type PlanLineage = {
  base: { name?: string; version_id?: string | null; sha256?: string };
  base_never_saw_the_data: boolean | null;
  base_statement: string;
  fine_tune: { dataset_id: string | null; dataset_version: number | null; samples: number | null };
};

/** Shadow models (LiRA) a plan item needs: trained once per version, then reused. */
export type PlanShadows = {
  k: number;
  exists: boolean;
  from_version_id: string | null;
  one_off_seconds: number | null;
  paid_seconds: number | null;
  runs_served: number;
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
  estimated_passes?: number;
  retrain_passes?: number;
  epochs?: number | null;
  budget_source?: string;
};

/** How strong a verdict's evidence is (core/deletion/policy.py), strongest first. */
export type EvidenceLevel = "exact" | "verified_against_reference" | "not_distinguishable" | "not_certified";

/** One check on the candidate and, the same check, on the original it replaces. */
export type CheckRecord = {
  check: string;
  /** forgetting: evidence the data left; utility: the model still works. */
  kind?: string;
  /** What the check measures, in words. */
  attack?: string;
  value: number | null;
  threshold: number | null;
  passed: boolean;
  original_value?: number | null;
  original_threshold?: number | null;
  /** null: the original's figure was not measured. */
  original_passed?: boolean | null;
  /** A forgetting check the original failed: only then does passing it say something. */
  informative?: boolean;
  /** Checked against shadow reference models (LiRA). */
  reference?: boolean;
  /** Diffusion: which judge at which sampler setting (one check per cell). */
  judge?: string;
  sampler?: string;
  /** A 95 % interval of the value, where measured. */
  ci?: [number, number];
  labels?: string[];
};

/** One run of a deletion item, passed or not, with its figures. */
export type Attempt = {
  at?: string;
  attempt?: number;
  method: string;
  exact?: boolean;
  job_id?: string | null;
  job_state?: string | null;
  wall_seconds?: number | null;
  passed: boolean;
  level?: string | null;
  evidence?: string | null;
  reason?: string | null;
  checks?: CheckRecord[] | null;
  evaluation?: Record<string, unknown> | null;
  original_evaluation?: Record<string, unknown> | null;
};

/** A deletion item's verdict: the latest attempt's, carrying every attempt so far. */
export type Verdict = {
  passed: boolean;
  exact?: boolean;
  method?: string;
  level?: string;
  evidence?: string;
  reason?: string;
  checks?: CheckRecord[];
  informative_checks?: number;
  attempts?: Attempt[];
  evaluation?: Record<string, unknown> | null;
  original_evaluation?: Record<string, unknown> | null;
  /** Diffusion panels: how far the judges and sampler settings disagree. */
  disagreement?: Record<string, unknown>;
  judges?: string[];
  samplers?: (string | null)[];
};

/** A version of unknown lineage as the certificate names it. */
export type UnknownLineage = { version_id: string; model_id: string | null; sha256: string | null; status: string | null; note: string };
