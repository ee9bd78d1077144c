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

/** Follow a local `$ref` (one level; call again for nested refs). */
export function deref(schema: JsonSchema): JsonSchema {
  if (!schema.$ref) return schema;
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
