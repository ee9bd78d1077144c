/**
 * Forms generated from JSON Schema (the OpenAPI components): which fields exist, their
 * widgets, defaults and descriptions, and validation of what was typed against the
 * schema's own limits. Only the subset pydantic emits for our request bodies is
 * supported; an unknown shape falls back to a JSON text box rather than being dropped.
 */
import { deref, type JsonSchema } from "../api/openapi";

export type DraftValue = string | boolean | string[] | File | null | Draft;
export type Draft = { [name: string]: DraftValue };

export type FieldKind =
  | "const"
  | "enum"
  | "integer"
  | "number"
  | "string"
  | "text"
  | "boolean"
  | "tuple"
  | "list"
  | "multi"
  | "file"
  | "object"
  | "variant"
  | "json";

/**
 * Where a "variant" draft (a union of object schemas, e.g. classifier or diffusion
 * params) keeps which alternative is chosen: its index among `Field.variants`.
 */
export const VARIANT_KEY = "$variant";

export type Field = {
  name: string;
  path: string;
  kind: FieldKind;
  schema: JsonSchema;
  required: boolean;
  nullable: boolean;
  title: string;
  description?: string;
  /** For kind "variant": the object schemas one of which the value must match. */
  variants?: JsonSchema[];
};

export type Errors = Record<string, string>;

function titleCase(name: string): string {
  return name.replace(/_/g, " ").replace(/^\w/, (c) => c.toUpperCase());
}

/** A property's effective schema: `X | null` becomes X marked nullable; refs resolved. */
export function unwrap(raw: JsonSchema): { schema: JsonSchema; nullable: boolean } {
  let schema = deref(raw);
  let nullable = false;
  if (schema.anyOf) {
    const variants = schema.anyOf.filter((v) => v.type !== "null");
    nullable = variants.length < schema.anyOf.length;
    if (variants.length === 1) {
      // Keep the outer title/description/default; take the constraints from the variant.
      const { anyOf: _ignored, ...outer } = schema;
      schema = { ...deref(variants[0]), ...outer };
    }
  }
  return { schema, nullable };
}

function kindOf(schema: JsonSchema): FieldKind {
  if (schema.const !== undefined) return "const";
  if (schema.enum) return "enum";
  if (schema.anyOf) return "json";
  switch (schema.type) {
    case "integer":
      return "integer";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "string":
      if (schema.contentMediaType) return "file";
      return (schema.maxLength ?? 0) >= 1000 ? "text" : "string";
    case "array":
      if (schema.prefixItems) return "tuple";
      if (schema.items?.enum) return "multi";
      if (schema.items && ["number", "integer", "string"].includes(schema.items.type ?? "")) return "list";
      return "json";
    case "object":
      return schema.properties ? "object" : "json";
    default:
      return "json";
  }
}

/** Fields in schema order, except that names listed in `order` come first. */
export function orderFields(fields: Field[], order: string[] = []): Field[] {
  const rank = (f: Field) => {
    const i = order.indexOf(f.path);
    return i === -1 ? order.length : i;
  };
  return fields.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
}

/** The object alternatives of a union of several objects (`A | B [| None]`), else null. */
export function objectVariants(raw: JsonSchema): JsonSchema[] | null {
  const schema = deref(raw);
  const options = (schema.anyOf ?? schema.oneOf ?? []).filter((v) => v.type !== "null").map(deref);
  return options.length >= 2 && options.every((v) => v.type === "object" && v.properties) ? options : null;
}

/** The chosen alternative of a variant field's draft (the first when none is recorded). */
export function chosenVariant(field: Field, draft: Draft | null | undefined): number {
  const i = Number(draft?.[VARIANT_KEY] ?? 0);
  return Number.isInteger(i) && i >= 0 && i < (field.variants?.length ?? 0) ? i : 0;
}

/** A fresh draft of alternative `index` of a variant field. */
export function variantDraft(field: Field, index: number): Draft {
  return { ...initialDraft(field.variants![index]), [VARIANT_KEY]: String(index) };
}

export function fieldsOf(objectSchema: JsonSchema, prefix = ""): Field[] {
  const schema = deref(objectSchema);
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {}).map(([name, raw]) => {
    const { schema: s, nullable } = unwrap(raw);
    const variants = objectVariants(raw);
    // A `$ref` property would otherwise take the referenced model's name as its title.
    const isRef = Boolean(raw.$ref || raw.anyOf?.some((v) => v.$ref));
    return {
      name,
      path: prefix ? `${prefix}.${name}` : name,
      kind: variants ? "variant" : kindOf(s),
      schema: s,
      ...(variants ? { variants } : {}),
      required: required.has(name),
      nullable,
      title: (isRef ? raw.title : s.title) ?? titleCase(name),
      description: isRef ? (raw.description ?? s.description) : s.description,
    };
  });
}

function initialValue(field: Field): DraftValue {
  const d = field.schema.default;
  switch (field.kind) {
    case "object":
      // An optional object (`X | None = None`) starts switched off.
      return field.nullable && !field.required && (d === null || d === undefined) ? null : initialDraft(field.schema);
    case "variant":
      return field.nullable && !field.required && (d === null || d === undefined) ? null : variantDraft(field, 0);
    case "boolean":
      return d === true;
    case "file":
      return null;
    case "tuple":
      return Array.isArray(d) ? d.map(String) : (field.schema.prefixItems ?? []).map(() => "");
    case "multi":
      return Array.isArray(d) ? d.map(String) : [];
    case "list":
      return Array.isArray(d) ? d.join(", ") : "";
    case "json":
      return d === undefined || d === null ? "" : JSON.stringify(d);
    case "enum":
      // No default: the user chooses (never silently the first, e.g. the admin role).
      return d !== undefined && d !== null ? String(d) : "";
    default:
      return d === undefined || d === null ? "" : String(d);
  }
}

/** The starting values: every field at its schema default. */
export function initialDraft(objectSchema: JsonSchema): Draft {
  return Object.fromEntries(fieldsOf(objectSchema).map((f) => [f.name, initialValue(f)]));
}

/** Python-flavoured patterns from pydantic; an unparseable one is left to the server. */
function patternMatches(pattern: string, value: string): boolean {
  for (const flags of ["u", ""]) {
    try {
      return new RegExp(pattern, flags).test(value);
    } catch {
      /* try the next flags */
    }
  }
  return true;
}

function fmt(n: number): string {
  return String(Number.isInteger(n) ? n : +n.toPrecision(6));
}

/** Range, length and pattern checks of one scalar; returns a message or null. */
export function checkScalar(schema: JsonSchema, value: unknown): string | null {
  if (typeof value === "number") {
    if (schema.type === "integer" && !Number.isInteger(value)) return "Must be a whole number";
    if (schema.minimum !== undefined && value < schema.minimum) return `Must be at least ${fmt(schema.minimum)}`;
    if (schema.maximum !== undefined && value > schema.maximum) return `Must be at most ${fmt(schema.maximum)}`;
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum)
      return `Must be greater than ${fmt(schema.exclusiveMinimum)}`;
    if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum)
      return `Must be less than ${fmt(schema.exclusiveMaximum)}`;
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength)
      return schema.minLength === 1 ? "Required" : `Must be at least ${schema.minLength} characters`;
    if (schema.maxLength !== undefined && value.length > schema.maxLength)
      return `Must be at most ${schema.maxLength} characters`;
    if (schema.pattern && !patternMatches(schema.pattern, value))
      return `Does not match the required format (${schema.pattern})`;
    if (schema.enum && !schema.enum.map(String).includes(value)) return `Must be one of ${schema.enum.join(", ")}`;
  }
  return null;
}

function parseNumber(text: string, schema: JsonSchema): number | string {
  const n = Number(text.trim());
  if (text.trim() === "" || !Number.isFinite(n)) return schema.type === "integer" ? "Enter a whole number" : "Enter a number";
  return n;
}

function parseItem(text: string, schema: JsonSchema): { value?: unknown; error?: string } {
  if (schema.type === "integer" || schema.type === "number") {
    const n = parseNumber(text, schema);
    if (typeof n === "string") return { error: n };
    const error = checkScalar(schema, n);
    return error ? { error } : { value: n };
  }
  const error = checkScalar(schema, text);
  return error ? { error } : { value: text };
}

function isEmpty(field: Field, v: DraftValue): boolean {
  if (v === null || v === undefined) return true;
  if (typeof v === "string") return v.trim() === "";
  if (Array.isArray(v)) return field.kind === "tuple" ? v.every((x) => x.trim() === "") : v.length === 0;
  return false;
}

/**
 * The JSON value a draft stands for, and the errors by field path. Empty optional
 * fields are left out so the API applies its own defaults.
 */
export function buildValue(objectSchema: JsonSchema, draft: Draft, prefix = ""): { value: Record<string, unknown>; errors: Errors } {
  const value: Record<string, unknown> = {};
  const errors: Errors = {};
  for (const field of fieldsOf(objectSchema, prefix)) {
    const raw = draft[field.name];
    const s = field.schema;
    if (field.kind === "const") {
      value[field.name] = s.const;
      continue;
    }
    if (field.kind === "object") {
      if (raw === null || raw === undefined) {
        if (field.required) errors[field.path] = "Required";
        continue;
      }
      const nested = buildValue(s, raw as Draft, field.path);
      Object.assign(errors, nested.errors);
      value[field.name] = nested.value;
      continue;
    }
    if (field.kind === "variant") {
      if (raw === null || raw === undefined) {
        if (field.required) errors[field.path] = "Required";
        continue;
      }
      const { [VARIANT_KEY]: _chosen, ...rest } = raw as Draft;
      const nested = buildValue(field.variants![chosenVariant(field, raw as Draft)], rest, field.path);
      Object.assign(errors, nested.errors);
      value[field.name] = nested.value;
      continue;
    }
    if (field.kind === "boolean") {
      value[field.name] = raw === true;
      continue;
    }
    if (isEmpty(field, raw)) {
      if (field.required) errors[field.path] = "Required";
      continue;
    }
    switch (field.kind) {
      case "integer":
      case "number":
      case "string":
      case "text":
      case "enum": {
        const parsed = parseItem(String(raw), s);
        if (parsed.error) errors[field.path] = parsed.error;
        else value[field.name] = parsed.value;
        break;
      }
      case "file":
        value[field.name] = raw;
        break;
      case "tuple": {
        const items = raw as string[];
        const out: unknown[] = [];
        items.forEach((text, i) => {
          const parsed = parseItem(text, s.prefixItems?.[i] ?? {});
          if (parsed.error && !errors[field.path]) errors[field.path] = `Item ${i + 1}: ${parsed.error}`;
          out.push(parsed.value);
        });
        if (!errors[field.path]) value[field.name] = out;
        break;
      }
      case "list": {
        // Text items (prompts) may hold commas: one per line when there is a line break.
        const text = String(raw);
        const sep = s.items?.type === "string" && text.includes("\n") ? "\n" : ",";
        const parts = text.split(sep).map((p) => p.trim()).filter(Boolean);
        const out: unknown[] = [];
        for (const [i, text] of parts.entries()) {
          const parsed = parseItem(text, s.items ?? {});
          if (parsed.error) {
            errors[field.path] = `Item ${i + 1}: ${parsed.error}`;
            break;
          }
          out.push(parsed.value);
        }
        if (!errors[field.path]) value[field.name] = out;
        break;
      }
      case "multi": {
        const chosen = raw as string[];
        if (s.minItems !== undefined && chosen.length < s.minItems) errors[field.path] = `Choose at least ${s.minItems}`;
        else value[field.name] = chosen;
        break;
      }
      case "json": {
        try {
          value[field.name] = JSON.parse(String(raw));
        } catch {
          errors[field.path] = "Not valid JSON";
        }
        break;
      }
    }
    if (!errors[field.path] && (s.minItems !== undefined || s.maxItems !== undefined) && Array.isArray(value[field.name])) {
      const n = (value[field.name] as unknown[]).length;
      if (s.minItems !== undefined && n < s.minItems) errors[field.path] = `Needs at least ${s.minItems} item(s)`;
      if (s.maxItems !== undefined && n > s.maxItems) errors[field.path] = `Takes at most ${s.maxItems} item(s)`;
      if (errors[field.path]) delete value[field.name];
    }
  }
  return { value, errors };
}

/** Read a draft value at a dotted path (undefined: no such field). */
export function getAt(draft: Draft, path: string): DraftValue | undefined {
  let cur: DraftValue | undefined = draft;
  for (const part of path.split(".")) {
    if (!cur || typeof cur !== "object" || Array.isArray(cur) || cur instanceof File) return undefined;
    if (!(part in cur)) return undefined;
    cur = (cur as Draft)[part];
  }
  return cur;
}

/** The API's per-field messages that belong to fields of this draft, by their path. */
export function errorsForDraft(draft: Draft, fields: Record<string, string>): Errors {
  const out: Errors = {};
  for (const [path, message] of Object.entries(fields)) {
    // A union body's errors start with the variant's tag ("train.params.lr").
    const candidates = [path, path.split(".").slice(1).join(".")];
    const hit = candidates.find((p) => p && getAt(draft, p) !== undefined);
    if (hit) out[hit] = message;
  }
  return out;
}

/** A copy of the draft with one value replaced at a dotted path. */
export function setAt(draft: Draft, path: string, value: DraftValue): Draft {
  const [head, ...rest] = path.split(".");
  if (!rest.length) return { ...draft, [head]: value };
  return { ...draft, [head]: setAt((draft[head] as Draft) ?? {}, rest.join("."), value) };
}

/** Multipart body for an upload endpoint, from a built value. */
export function toFormData(value: Record<string, unknown>): FormData {
  const form = new FormData();
  for (const [name, v] of Object.entries(value)) {
    if (v === undefined || v === null) continue;
    if (v instanceof File) form.append(name, v, v.name);
    else form.append(name, typeof v === "object" ? JSON.stringify(v) : String(v));
  }
  return form;
}
