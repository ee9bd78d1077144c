import { describe, expect, it } from "vitest";

import { componentSchema, requestSchema } from "../api/openapi";
import { buildValue, chosenVariant, fieldsOf, initialDraft, orderFields, setAt, VARIANT_KEY, variantDraft, type Draft } from "./schema";

const TRAIN_PARAMS = componentSchema("TrainParams");
const ARCH = componentSchema("ArchitectureConfig");

describe("fields from the OpenAPI schema", () => {
  it("lists every TrainParams property with its kind, title and description", () => {
    const fields = fieldsOf(TRAIN_PARAMS);
    const byName = Object.fromEntries(fields.map((f) => [f.name, f]));
    expect(Object.keys(byName).sort()).toEqual(Object.keys(TRAIN_PARAMS.properties!).sort());
    expect(byName.epochs.kind).toBe("integer");
    expect(byName.lr.kind).toBe("number");
    expect(byName.optimizer.kind).toBe("enum");
    expect(byName.max_train_samples).toMatchObject({ kind: "integer", nullable: true, required: false });
    expect(byName.batch_size.description).toBe(TRAIN_PARAMS.properties!.batch_size.description);
  });

  it("starts every field at its schema default", () => {
    const draft = initialDraft(TRAIN_PARAMS);
    expect(draft.batch_size).toBe(String(TRAIN_PARAMS.properties!.batch_size.default));
    expect(draft.optimizer).toBe("sgd");
    expect(draft.max_train_samples).toBe("");
    const { value, errors } = buildValue(TRAIN_PARAMS, draft);
    expect(errors).toEqual({});
    // Defaults round-trip to the same JSON the API would fill in itself.
    for (const [name, prop] of Object.entries(TRAIN_PARAMS.properties!)) {
      if (prop.default !== undefined && prop.default !== null) expect(value[name]).toEqual(prop.default);
    }
    expect("max_train_samples" in value).toBe(false);
  });

  it("enforces the schema's ranges, integer-ness and patterns", () => {
    const check = (name: string, text: string) => buildValue(TRAIN_PARAMS, { ...initialDraft(TRAIN_PARAMS), [name]: text }).errors[name];
    expect(check("lr", "0")).toBe("Must be greater than 0"); // exclusiveMinimum
    expect(check("lr", "10")).toBeUndefined(); // maximum is inclusive
    expect(check("lr", "10.5")).toBe("Must be at most 10");
    expect(check("epochs", "0")).toBe("Must be at least 1");
    expect(check("epochs", "1.5")).toBe("Must be a whole number");
    expect(check("epochs", "abc")).toBe("Enter a whole number");
    expect(check("momentum", "1")).toBe("Must be less than 1"); // exclusiveMaximum
    expect(check("device", "gpu")).toMatch(/required format/);
    expect(check("device", "cuda:1")).toBeUndefined();
    expect(check("max_train_samples", "0")).toBe("Must be at least 1");
  });

  it("handles tuples, number lists, required fields and nested objects", () => {
    const draft: Draft = { ...initialDraft(ARCH), name: "mlp", num_classes: "10", input_size: ["32", "3"], normalize_mean: "0.5, 0.25" };
    const { value, errors } = buildValue(ARCH, draft);
    expect(errors).toEqual({ input_size: "Item 2: Must be at least 4" });
    expect(buildValue(ARCH, { ...draft, input_size: ["32", "32"] }).value).toMatchObject({ input_size: [32, 32], normalize_mean: [0.5, 0.25], num_classes: 10 });
    expect(value.name).toBe("mlp");
    expect(buildValue(ARCH, initialDraft(ARCH)).errors).toMatchObject({ name: "Required", num_classes: "Required" });

    const create = requestSchema("/api/v1/models", "post");
    const nested = buildValue(create, setAt(initialDraft(create), "architecture.num_classes", "1"));
    expect(nested.errors["architecture.num_classes"]).toBe("Must be at least 2");
    // A const is sent as is (the API's own documents change; this shape does not).
    const tagged = { type: "object", properties: { family: { type: "string", const: "ddpm" }, n: { type: "integer" } } };
    expect(buildValue(tagged, { ...initialDraft(tagged), n: "3" }).value).toEqual({ family: "ddpm", n: 3 });
  });

  it("puts chosen fields first and keeps the rest in schema order", () => {
    const names = orderFields(fieldsOf(TRAIN_PARAMS), ["seed", "lr"]).map((f) => f.name);
    expect(names.slice(0, 2)).toEqual(["seed", "lr"]);
    expect(names).toHaveLength(Object.keys(TRAIN_PARAMS.properties!).length);
  });
});

describe("optional nested objects", () => {
  const schema = {
    type: "object",
    required: ["name"],
    properties: {
      name: { type: "string", title: "Name" },
      sisa: {
        anyOf: [{ type: "object", title: "SisaSpec", required: ["shards"], properties: { shards: { type: "integer", minimum: 1 } } }, { type: "null" }],
        description: "Train a SISA ensemble",
      },
    },
  };

  it("start switched off, titled by the property, and are left out until switched on", () => {
    const sisa = fieldsOf(schema).find((f) => f.name === "sisa")!;
    expect(sisa).toMatchObject({ kind: "object", nullable: true, required: false, description: "Train a SISA ensemble" });
    const draft: Draft = { ...initialDraft(schema), name: "x" };
    expect(draft.sisa).toBeNull();
    expect(buildValue(schema, draft)).toEqual({ value: { name: "x" }, errors: {} });
    const on = { ...draft, sisa: initialDraft(sisa.schema) };
    expect(buildValue(schema, on).errors).toEqual({ "sisa.shards": "Required" });
    expect(buildValue(schema, setAt(on, "sisa.shards", "4")).value).toEqual({ name: "x", sisa: { shards: 4 } });
  });
});

describe("a union of objects (e.g. classifier or diffusion params)", () => {
  const a = { type: "object", title: "TrainParams", properties: { lr: { type: "number", exclusiveMinimum: 0, default: 0.1 } } };
  const b = { type: "object", title: "DiffusionTrainParams", required: ["steps"], properties: { family: { type: "string", const: "ddpm" }, steps: { type: "integer", minimum: 1 } } };
  const schema = { type: "object", properties: { params: { anyOf: [a, b], title: "Params" } } };

  it("starts at the first alternative with its defaults and builds only the chosen one", () => {
    const params = fieldsOf(schema)[0];
    expect(params).toMatchObject({ kind: "variant", title: "Params" });
    expect(params.variants).toHaveLength(2);
    const draft = initialDraft(schema);
    expect(draft.params).toEqual({ lr: "0.1", [VARIANT_KEY]: "0" });
    expect(buildValue(schema, draft)).toEqual({ value: { params: { lr: 0.1 } }, errors: {} });
    expect(buildValue(schema, setAt(draft, "params.lr", "0")).errors).toEqual({ "params.lr": "Must be greater than 0" });
  });

  it("switches to another alternative, whose own fields and checks then apply", () => {
    const params = fieldsOf(schema)[0];
    const draft: Draft = { params: variantDraft(params, 1) };
    expect(chosenVariant(params, draft.params as Draft)).toBe(1);
    expect(buildValue(schema, draft).errors).toEqual({ "params.steps": "Required" });
    expect(buildValue(schema, setAt(draft, "params.steps", "5")).value).toEqual({ params: { family: "ddpm", steps: 5 } });
  });
});
