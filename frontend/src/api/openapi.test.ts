import { describe, expect, it } from "vitest";

import { discriminatedBodies, parameterChoices, requestSchema } from "./openapi";

describe("choices and forms come from the committed OpenAPI document", () => {
  it("reads filter choices from the query parameters' patterns", () => {
    expect(parameterChoices("/api/v1/jobs", "get", "kind")).toEqual(expect.arrayContaining(["train", "evaluate"]));
    expect(parameterChoices("/api/v1/jobs", "get", "state")).toEqual(expect.arrayContaining(["queued", "running", "succeeded", "failed", "cancelled"]));
    expect(parameterChoices("/api/v1/models/{model_id}/versions", "get", "status")).toEqual(["active", "tainted", "retired", "purged"]);
  });

  it("finds the job kinds a POST /jobs accepts and their bodies", () => {
    const bodies = discriminatedBodies("/api/v1/jobs", "post");
    expect(Object.keys(bodies).sort()).toEqual(expect.arrayContaining(["evaluate", "train"]));
    expect(bodies.train.required).toEqual(expect.arrayContaining(["model_id", "dataset_id"]));
    expect(requestSchema("/api/v1/datasets/upload", "post").properties?.file?.contentMediaType).toBeTruthy();
  });
});
