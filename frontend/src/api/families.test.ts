import { describe, expect, it } from "vitest";

import { fieldsOf, initialDraft } from "../forms/schema";
import { CAUSAL_LM, FAMILIES } from "../test/families";
import { architectureSchema, familyNamed, judgeSchema, modelsOffering, offers, paramsSchema, type Family } from "./families";
import { deref } from "./openapi";

/** causal_lm with another `LoraParams` under the same name, as a second family might declare. */
const OTHER: Family = {
  ...CAUSAL_LM,
  name: "other_lm",
  params_schemas: {
    train: {
      type: "object",
      properties: { lora: { $ref: "#/$defs/LoraParams" } },
      $defs: { LoraParams: { type: "object", title: "LoraParams", properties: { rank: { type: "integer", default: 2 } } } },
    },
  },
};

describe("family declarations", () => {
  it("resolve a params schema's own $defs, each family's apart", () => {
    const lm = paramsSchema(CAUSAL_LM, "train")!;
    const other = paramsSchema(OTHER, "train")!;
    const lora = (schema: typeof lm) => fieldsOf(schema).find((f) => f.name === "lora")!;
    expect(Object.keys(lora(lm).schema.properties ?? {})).toEqual(["r", "alpha"]);
    expect(Object.keys(lora(other).schema.properties ?? {})).toEqual(["rank"]);
    expect(lora(lm).title).toBe("Lora");
    expect(initialDraft(lm)).toMatchObject({ epochs: "3", max_length: "256", lora: null });
    expect(() => deref({ $ref: "#/$defs/never/Declared" })).toThrow(/no schema registered/);
  });

  it("give the same prepared schema on every call (a form re-rendering keeps its shape)", () => {
    expect(paramsSchema(CAUSAL_LM, "train")).toBe(paramsSchema(CAUSAL_LM, "train"));
  });

  it("say which kinds a family runs and what it lacks", () => {
    const sd = familyNamed(FAMILIES, "stable_diffusion");
    expect(offers(sd, "generate")).toBe(true);
    expect(offers(sd, "train")).toBe(false);
    expect(paramsSchema(sd, "train")).toBeNull();
    expect(offers(familyNamed(FAMILIES, "no_such_family"), "train")).toBe(false);
    const trains = modelsOffering(FAMILIES, "train");
    expect(trains({ family: "causal_lm" })).toBe(true);
    expect(trains({ family: "stable_diffusion" })).toBe(false);
  });

  it("have a judge schema exactly where the family is judged", () => {
    expect(FAMILIES.filter((f) => judgeSchema(f) !== null).map((f) => f.name)).toEqual(FAMILIES.filter((f) => f.judged).map((f) => f.name));
    expect(judgeSchema(CAUSAL_LM)).toBeNull();
  });

  it("offer the declared architecture names where the architecture has a name", () => {
    const classifier = familyNamed(FAMILIES, "classifier")!;
    expect(architectureSchema(classifier).properties?.name?.enum).toEqual(classifier.architectures);
    expect(architectureSchema(CAUSAL_LM).properties?.name).toBeUndefined();
  });
});
