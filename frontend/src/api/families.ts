/**
 * Model families as the API declares them (GET /api/v1/families): which job kinds a
 * family's models run, their params schemas, the forget scopes, whether a judge scores
 * them, the architectures a new model may take. The dashboard keeps no family rules of
 * its own: every form that depends on a model's family asks these declarations, so a
 * family added on the server (its declaration) shows up here without a dashboard change.
 */
import { useQuery } from "@tanstack/react-query";

import { api, unwrap } from "./client";
import { standaloneSchema, type JsonSchema } from "./openapi";
import type { components } from "./schema";

/** The job kinds whose params a family declares. */
export type ParamsKind = "train" | "generate" | "evaluate";

/**
 * FamilyPublic with its schemas typed as JSON Schema (the generated type can only say
 * "an object" for them).
 */
export type Family = Omit<components["schemas"]["FamilyPublic"], "architecture_schema" | "params_schemas" | "judge_schema" | "policy_defaults"> & {
  architecture_schema: JsonSchema;
  /** Null (or absent) for a kind whose jobs it does not run or whose jobs take no params. */
  params_schemas: Partial<Record<ParamsKind, JsonSchema | null>>;
  judge_schema: JsonSchema | null;
  policy_defaults: Record<string, unknown>;
};

export const FAMILIES_PATH = "/api/v1/families";

/**
 * Every family's declaration. The list changes only with a deployment, so it is fetched
 * once per session.
 */
export function useFamilies() {
  return useQuery({
    queryKey: ["families"],
    queryFn: async () => (await unwrap(api.GET(FAMILIES_PATH))) as Family[],
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
