/**
 * GET /api/v1/families as the tests' fake API answers it: the four image families as the
 * API answers (families.json, less causal_lm; tests/frontend/test_families_fixture.py
 * fails when it is stale and says how to regenerate it), and `causal_lm` written here, a
 * family the dashboard has no code for, with a few train params of its own (including a
 * nested optional object behind a `$ref`, as pydantic writes one).
 */
import type { Family } from "../api/families";
import snapshot from "./families.json";

export const IMAGE_FAMILIES = snapshot as unknown as Family[];

export const CAUSAL_LM: Family = {
  name: "causal_lm",
  title: "Causal language model",
  summary: "Answers questions; forgets the facts of a person.",
  data: "text",
  architectures: ["smollm2-135m", "tiny-llama"],
  architecture_schema: {
    type: "object",
    title: "LMArchitecture",
    properties: {
      base: { type: "string", enum: ["smollm2-135m", "tiny-llama", "uploaded"], title: "Base", default: "smollm2-135m" },
      hidden_size: { type: "integer", minimum: 8, maximum: 4096, title: "Hidden Size", default: 64 },
    },
  },
  params_schemas: {
    train: {
      type: "object",
      title: "LMTrainParams",
      description: "Hyper-parameters of one fine-tune.",
      additionalProperties: false,
      properties: {
        epochs: { type: "integer", minimum: 1, maximum: 200, title: "Epochs", default: 3 },
        lr: { type: "number", exclusiveMinimum: 0, maximum: 1, title: "Lr", default: 0.0001 },
        max_length: { type: "integer", minimum: 8, maximum: 8192, title: "Max Length", description: "Tokens per record; longer ones are cut.", default: 256 },
        lora: { anyOf: [{ $ref: "#/$defs/LoraParams" }, { type: "null" }], default: null, description: "Train a LoRA adapter instead." },
      },
      $defs: {
        LoraParams: {
          type: "object",
          title: "LoraParams",
          additionalProperties: false,
          properties: {
            r: { type: "integer", minimum: 1, maximum: 256, title: "R", default: 8 },
            alpha: { type: "integer", minimum: 1, maximum: 1024, title: "Alpha", default: 16 },
          },
        },
      },
    },
    generate: {
      type: "object",
      title: "LMGenerateParams",
      properties: {
        prompts: { type: "array", items: { type: "string" }, minItems: 1, maxItems: 256, title: "Prompts" },
        max_new_tokens: { type: "integer", minimum: 1, maximum: 2048, title: "Max New Tokens", default: 64 },
      },
      required: ["prompts"],
    },
  },
  job_kinds: ["train", "unlearn", "evaluate", "generate"],
  scopes: ["subject_ids", "sample_ids"],
  judged: false,
  judge_schema: null,
  policy_defaults: { method: "grad_diff" },
  methods: ["grad_diff", "npo"],
  docs: "docs/language-models.md",
  uploadable: [{ format: "hf_folder", description: "a Hugging Face model folder as a zip" }],
};

export const FAMILIES: Family[] = [...IMAGE_FAMILIES, CAUSAL_LM];

const MODEL = { description: "", created_at: "2026-11-01T10:00:00Z", created_by: null, latest_version: 1 };
/** A model of the family the dashboard has no code for. */
export const LM_MODEL = { ...MODEL, id: "mdl_lm", name: "people-lm", family: "causal_lm", architecture: { base: "tiny-llama", hidden_size: 64 } };
/** A judged family other than ddpm (the dashboard once showed the judge for ddpm only). */
export const T2I_MODEL = { ...MODEL, id: "mdl_t2i", name: "tiny-t2i", family: "text2image", architecture: { family: "text2image", num_classes: 10 } };
