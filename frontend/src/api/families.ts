/**
 * Model families as the API declares them (GET /api/v1/families): which job kinds a
 * family's models run, their params schemas, the forget scopes, whether a judge scores
 * them, the architectures a new model may take. The dashboard keeps no family rules of
 * its own: every form that depends on a model's family asks these declarations, so a
 * family added on the server (its declaration) shows up here without a dashboard change.
 */
import { useQuery } from "@tanstack/react-query";

import { fetchWithKey } from "./client";
import { standaloneSchema, type JsonSchema } from "./openapi";

/** The job kinds whose params a family declares. */
export type ParamsKind = "train" | "generate" | "evaluate";

export type Family = {
  name: string;
  title: string;
  summary: string;
  /** What its datasets hold: "images", "text" or "none". */
  data: string;
  /** Architecture names a model of this family may take. */
  architectures: string[];
  architecture_schema: JsonSchema;
  /** Null (or absent) for a kind whose jobs it does not run or whose jobs take no params. */
  params_schemas: Partial<Record<ParamsKind, JsonSchema | null>>;
  /** The kinds of job its models run (train, unlearn, evaluate, generate, ...). */
  job_kinds: string[];
  /** The forget scopes it supports (subject_ids, sample_ids, labels, concept). */
  scopes: string[];
  judged: boolean;
  judge_schema: JsonSchema | null;
  policy_defaults: Record<string, unknown>;
  methods: string[];
  /** Its documentation page, relative to the repository. */
  docs: string;
  /** Checkpoint formats a version upload accepts (empty: none). */
  uploadable: { format: string; description: string }[];
};

export const FAMILIES_PATH = "/api/v1/families";

/**
 * Every family's declaration. Read with the signed-in key; the list changes only with a
 * deployment, so it is fetched once per session.
 */
export function useFamilies() {
  return useQuery({
    queryKey: ["families"],
    queryFn: async (): Promise<Family[]> => {
      const body: unknown = await (await fetchWithKey(FAMILIES_PATH)).json();
      // The API answers a plain list; a paged answer ({data: [...]}) reads the same.
      return (Array.isArray(body) ? body : ((body as { data?: Family[] }).data ?? [])) as Family[];
    },
    staleTime: Infinity,
  });
}

/** The declaration of `name` among `families`, or undefined (unknown or not loaded yet). */
export function familyNamed(families: Family[] | undefined, name: string | null | undefined): Family | undefined {
  return name ? families?.find((f) => f.name === name) : undefined;
}

/** Whether models of `family` run jobs of `kind` (false while the family is unknown). */
export function offers(family: Family | undefined, kind: string): boolean {
  return Boolean(family?.job_kinds.includes(kind));
}

/** A predicate over models: their family runs jobs of `kind`. */
export function modelsOffering(families: Family[] | undefined, kind: string) {
  return (model: { family: string }) => offers(familyNamed(families, model.family), kind);
}

// One prepared schema per declaration and part, so a form re-rendering gets the same object.
const prepared = new WeakMap<Family, Map<string, JsonSchema>>();

function prepare(family: Family, part: string, schema: JsonSchema): JsonSchema {
  let parts = prepared.get(family);
  if (!parts) prepared.set(family, (parts = new Map()));
  let out = parts.get(part);
  if (!out) parts.set(part, (out = standaloneSchema(`${family.name}/${part}`, schema)));
  return out;
}

/** The family's params schema for a kind of job, ready for the forms, or null if it has none. */
export function paramsSchema(family: Family | undefined, kind: ParamsKind): JsonSchema | null {
  const schema = family?.params_schemas[kind];
  return family && schema ? prepare(family, kind, schema) : null;
}

/** The family's judge settings schema, or null when no judge scores its models. */
export function judgeSchema(family: Family | undefined): JsonSchema | null {
  return family?.judged && family.judge_schema ? prepare(family, "judge", family.judge_schema) : null;
}

/**
 * The family's architecture schema, ready for the forms; where it has a `name` field, the
 * choices are the architectures the family declares.
 */
export function architectureSchema(family: Family): JsonSchema {
  const schema = prepare(family, "architecture", family.architecture_schema);
  const name = schema.properties?.name;
  if (!name || !family.architectures.length) return schema;
  return { ...schema, properties: { ...schema.properties, name: { ...name, type: "string", enum: family.architectures } } };
}
