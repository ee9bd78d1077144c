/**
 * The committed OpenAPI document, read at run time so forms and filter choices come
 * from the API's own schemas (the same file the typed client is generated from).
 */
import doc from "../../openapi.json";

export type JsonSchema = {
  $ref?: string;
  type?: string;
  title?: string;
  description?: string;
  default?: unknown;
  const?: unknown;
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  items?: JsonSchema;
  prefixItems?: JsonSchema[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  contentMediaType?: string;
  discriminator?: { propertyName: string; mapping: Record<string, string> };
  /** Named sub-schemas of a standalone schema (pydantic's `model_json_schema()`). */
  $defs?: Record<string, JsonSchema>;
};

type Parameter = { name: string; in: string; schema?: JsonSchema; description?: string };
type Operation = {
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
};

const openapi = doc as unknown as {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, JsonSchema> };
};

/** A named component schema, e.g. `componentSchema("TrainParams")`. */
export function componentSchema(name: string): JsonSchema {
  const schema = openapi.components.schemas[name];
  if (!schema) throw new Error(`OpenAPI document has no schema ${name}`);
  return schema;
}

const DEFS = "#/$defs/";
/** `$defs` of standalone schemas the API published elsewhere (GET /families), by scope. */
const standalone = new Map<string, JsonSchema>();

/**
 * A standalone JSON Schema (with its own `$defs`, as pydantic writes one) made usable by
 * the forms: its `#/$defs/X` references are renamed into `scope` and its definitions
 * registered under those names, so `deref` follows them like OpenAPI components and two
 * schemas with a same-named definition never mix. The same scope twice replaces the first.
 */
export function standaloneSchema(scope: string, schema: JsonSchema): JsonSchema {
  const rename = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rename);
    if (!value || typeof value !== "object") return value;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      if (key === "$defs") continue;
      out[key] = key === "$ref" && typeof v === "string" && v.startsWith(DEFS) ? `${DEFS}${scope}/${v.slice(DEFS.length)}` : rename(v);
    }
    return out;
  };
  for (const [name, def] of Object.entries(schema.$defs ?? {})) standalone.set(`${scope}/${name}`, rename(def) as JsonSchema);
  return rename(schema) as JsonSchema;
}

/** Follow a local `$ref` (one level; call again for nested refs). */
export function deref(schema: JsonSchema): JsonSchema {
  if (!schema.$ref) return schema;
  if (schema.$ref.startsWith(DEFS)) {
    const found = standalone.get(schema.$ref.slice(DEFS.length));
    if (!found) throw new Error(`no schema registered for ${schema.$ref}`);
    return found;
  }
  const name = schema.$ref.replace("#/components/schemas/", "");
  return componentSchema(name);
}

export function operation(path: string, method: string): Operation {
  const op = openapi.paths[path]?.[method];
  if (!op) throw new Error(`OpenAPI document has no ${method.toUpperCase()} ${path}`);
  return op;
}

/** The schema of a request body (JSON or multipart) of an operation. */
export function requestSchema(path: string, method: string): JsonSchema {
  const content = operation(path, method).requestBody?.content ?? {};
  const first = Object.values(content)[0];
  if (!first) throw new Error(`${method.toUpperCase()} ${path} takes no body`);
  return deref(first.schema);
}

/**
 * The allowed values of a query parameter, from its enum or its `^(a|b|c)$` pattern
 * (the API states job kinds, job states and version statuses as patterns).
 */
export function parameterChoices(path: string, method: string, name: string): string[] {
  const param = operation(path, method).parameters?.find((p) => p.name === name);
  if (!param?.schema) return [];
  const variants = param.schema.anyOf ?? [param.schema];
  for (const v of variants) {
    if (v.enum) return v.enum.map(String);
    const match = v.pattern?.match(/^\^\(([\w|-]+)\)\$$/);
    if (match) return match[1].split("|");
  }
  return [];
}

/** `{kind: schema}` for a body that is a discriminated union (e.g. POST /jobs). */
export function discriminatedBodies(path: string, method: string): Record<string, JsonSchema> {
  const content = operation(path, method).requestBody?.content ?? {};
  const schema = Object.values(content)[0]?.schema;
  const mapping = schema?.discriminator?.mapping ?? {};
  return Object.fromEntries(Object.entries(mapping).map(([kind, ref]) => [kind, deref({ $ref: ref })]));
}
