/**
 * GET /methods as the API answers it (a trimmed copy of two real entries: esd for ddpm
 * models, finetune for classifiers), and models, versions and jobs for the
 * job-form and generation tests.
 */
export const METHODS = [
 {
  "name": "esd",
  "family": "ddpm",
  "exact": false,
  "paper": "Gandikota et al., 'Erasing Concepts from Diffusion Models', ICCV 2023, arXiv:2303.07345, https://erasing.baulab.info",
  "summary": "Negative-guidance fine-tuning: asked for the class, predict the frozen model's     unconditional noise pushed away from the class.",
  "params_schema": {
   "additionalProperties": false,
   "properties": {
    "steps": {
     "default": 400,
     "description": "Optimizer steps (iterations).",
     "maximum": 1000000,
     "minimum": 1,
     "title": "Steps",
     "type": "integer"
    },
    "batch_size": {
     "default": 16,
     "description": "Images per optimizer step.",
     "maximum": 4096,
     "minimum": 1,
     "title": "Batch Size",
     "type": "integer"
    },
    "lr": {
     "default": 0.0001,
     "description": "Adam learning rate.",
     "exclusiveMinimum": 0,
     "maximum": 1,
     "title": "Lr",
     "type": "number"
    },
    "negative_guidance": {
     "default": 1.0,
     "description": "eta: how far past 'unconditional' the target is pushed.",
     "maximum": 20,
     "minimum": 0,
     "title": "Negative Guidance",
     "type": "number"
    },
    "train_method": {
     "default": "noxattn",
     "description": "Which parameters train: noxattn (ESD-u, everything but the conditioning pathway, time embedding and output layers; erases globally, the paper's choice for objects), xattn (ESD-x, only the layers that read the class), full.",
     "enum": [
      "full",
      "noxattn",
      "xattn"
     ],
     "title": "Train Method",
     "type": "string"
    },
    "trajectories": {
     "default": 64,
     "description": "Frozen-model samples recorded per erased class.",
     "maximum": 100000,
     "minimum": 1,
     "title": "Trajectories",
     "type": "integer"
    },
    "ddim_steps": {
     "default": 50,
     "description": "DDIM steps of those samples.",
     "maximum": 1000,
     "minimum": 2,
     "title": "Ddim Steps",
     "type": "integer"
    }
   },
   "title": "ESDParams",
   "type": "object"
  },
  "scopes": [
   "labels"
  ],
  "supports_loreun": false,
  "needs_forget_images": false,
  "needs_retain_images": false
 },
 {
  "name": "finetune",
  "family": "classifier",
  "exact": false,
  "paper": "Warnecke et al., 'Machine Unlearning of Features and Labels', NDSS 2023, arXiv:2108.11577; as evaluated in Jia et al., 'Model Sparsity Can Simplify Machine Unlearning', NeurIPS 2023, arXiv:2304.04934",
  "scopes": [
   "labels",
   "sample_ids",
   "subject_ids"
  ],
  "supports_loreun": false,
  "summary": "Fine-tune on the retain set (FT).",
  "params_schema": {
   "additionalProperties": false,
   "properties": {
    "retain_accuracy_floor": {
     "anyOf": [
      {
       "maximum": 1,
       "minimum": 0,
       "type": "number"
      },
      {
       "type": "null"
      }
     ],
     "default": null,
     "description": "Fail with UnlearningDiverged if accuracy on a retain probe falls below this; a method that destroys the model should not produce a model version.",
     "title": "Retain Accuracy Floor"
    },
    "epochs": {
     "default": 10,
     "description": "Passes over the retain set.",
     "maximum": 1000,
     "minimum": 1,
     "title": "Epochs",
     "type": "integer"
    },
    "lr": {
     "default": 0.01,
     "description": "Learning rate.",
     "exclusiveMinimum": 0,
     "maximum": 10,
     "title": "Lr",
     "type": "number"
    },
    "optimizer": {
     "default": "sgd",
     "description": "Optimizer.",
     "enum": [
      "sgd",
      "adam"
     ],
     "title": "Optimizer",
     "type": "string"
    }
   },
   "title": "FinetuneParams",
   "type": "object"
  }
 }
];

export const DDPM_MODEL = { id: "mdl_ddpm", name: "tiny-ddpm", family: "ddpm", architecture: { family: "ddpm", num_classes: 10, sample_size: 8 }, description: "", created_at: "2026-11-01T10:00:00Z", created_by: null, latest_version: 2 };
export const CNN_MODEL = { id: "mdl_cnn", name: "mnist-cnn", family: "classifier", architecture: { name: "small_cnn", num_classes: 10 }, description: "", created_at: "2026-11-01T10:00:00Z", created_by: null, latest_version: 1 };

export function fakeVersion(over: Record<string, unknown> = {}) {
  return { id: "mv_orig", model_id: DDPM_MODEL.id, version: 1, status: "active", source: "train", sha256: "a".repeat(64), size_bytes: 1000, config: {}, metrics: {}, parent_version_id: null, job_id: "job_train", dataset_version_id: "dv_1", created_at: "2026-11-01T10:00:00Z", created_by: null, ...over };
}

export const ORIGINAL = fakeVersion();
export const UNLEARNED = fakeVersion({ id: "mv_after", version: 2, source: "unlearn", parent_version_id: "mv_orig" });

const PARAMS = { labels: [0, 1, 2], seeds: null, seed: 0, guidance_scale: 3, num_inference_steps: 50, scheduler: "ddim", batch_size: 64, device: "cpu" };

export function fakeGeneration(over: Record<string, unknown> = {}) {
  const params = { ...PARAMS, ...((over.params as object) ?? {}) };
  const images = (params.labels as number[]).map((label, i) => ({ name: `image-${String(i).padStart(4, "0")}.png`, label, seed: (params.seed as number) + i, sha256: "b".repeat(64), key: `jobs/x/generated/image-${i}.png` }));
  return {
    id: "job_gen1", kind: "generate", state: "succeeded", queue: "cpu", model_id: DDPM_MODEL.id, dataset_id: null, model_version_id: ORIGINAL.id, result_version_id: null, method: null,
    spec: { grid_columns: 8 }, progress: 1, metrics: { images: images.length }, error: null, attempt: 1, worker: "w1", cancel_requested: false,
    artifacts: [{ name: "grid.png", key: "jobs/x/generated/grid.png" }, { name: "manifest.json", key: "jobs/x/generated/manifest.json" }, ...images],
    created_at: "2026-11-02T10:00:00Z", created_by: "key_me", started_at: "2026-11-02T10:00:01Z", finished_at: "2026-11-02T10:00:03Z", heartbeat_at: null, wall_seconds: 2, peak_memory_mb: 100, comparison: null,
    ...over, params,
  };
}

/** A one-pixel PNG: what an artifact download answers. */
export const png = () => new Response(new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), { headers: { "content-type": "image/png" } });
