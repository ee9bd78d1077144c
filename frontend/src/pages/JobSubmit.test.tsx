import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { LM_MODEL, T2I_MODEL } from "../test/families";
import { CNN_MODEL, DDPM_MODEL, fakeGeneration, fakeVersion, METHODS, ORIGINAL, UNLEARNED } from "../test/fixtures";
import { cleanupPage, json, renderPage, type Handler } from "../test/harness";

const load = async () => (await import("./JobSubmit")).JobSubmit;
const CNN_VERSION = fakeVersion({ id: "mv_cnn", model_id: CNN_MODEL.id });
const LM_VERSION = fakeVersion({ id: "mv_lm", model_id: LM_MODEL.id });
const T2I_VERSION = fakeVersion({ id: "mv_t2i", model_id: T2I_MODEL.id });
const VERSIONS: [{ id: string }, ReturnType<typeof fakeVersion>[]][] = [
  [DDPM_MODEL, [ORIGINAL, UNLEARNED]],
  [CNN_MODEL, [CNN_VERSION]],
  [LM_MODEL, [LM_VERSION]],
  [T2I_MODEL, [T2I_VERSION]],
];
/** Methods of the families the fixtures' METHODS lack: one for causal_lm, one for text2image. */
const MORE_METHODS = [
  { ...METHODS[1], name: "grad_diff", family: "causal_lm", summary: "Gradient difference.", scopes: ["labels", "subject_ids", "sample_ids"] },
  { ...METHODS[0], name: "uce", family: "text2image", summary: "Unified concept editing.", scopes: ["labels", "concept"] },
];

/** The API for these forms; POST /jobs bodies land in `posted`. */
function fakeApi(posted: unknown[], methods: () => Response = () => json([...METHODS, ...MORE_METHODS])): Handler {
  return async (r, url) => {
    const p = url.pathname;
    if (p.endsWith("/api/v1/models")) return json({ data: [DDPM_MODEL, CNN_MODEL, LM_MODEL, T2I_MODEL], count: 4, next_cursor: null });
    if (p.endsWith("/datasets")) return json({ data: [{ id: "ds_1", name: "mnist", num_samples: 100, label_names: ["0", "1"] }], count: 1, next_cursor: null });
    for (const [model, versions] of VERSIONS) if (p.endsWith(`/models/${model.id}/versions`)) return json({ data: versions, count: versions.length, next_cursor: null });
    for (const v of VERSIONS.flatMap(([, vs]) => vs)) if (p.endsWith(`/model-versions/${v.id}`)) return json(v);
    if (p.endsWith("/methods")) {
      const response = methods();
      if (!response.ok) return response;
      const family = url.searchParams.get("family");
      return json([...METHODS, ...MORE_METHODS].filter((m) => !family || m.family === family));
    }
    if (p.endsWith("/api/v1/jobs") && r.method === "POST") {
      posted.push(await r.json());
      return json(fakeGeneration({ id: "job_new" }), 201);
    }
    return undefined;
  };
}

describe("submitting jobs", () => {
  afterEach(cleanupPage);

  it("offers every kind the API takes", async () => {
    await renderPage({ role: "engineer", path: "/jobs/new", route: "/jobs/new", load, handler: fakeApi([]) });
    const kinds = within(await screen.findByRole("radiogroup", { name: "Job kind" })).getAllByRole("radio");
    expect(kinds.map((k) => (k as HTMLInputElement).value)).toEqual(["train", "unlearn", "evaluate", "generate"]);
  });

  it("is not offered to a viewer", async () => {
    await renderPage({ role: "viewer", path: "/jobs/new?kind=unlearn", route: "/jobs/new", load, handler: fakeApi([]) });
    expect(await screen.findByText(/Your role may not submit jobs/)).toBeTruthy();
    expect(screen.queryByRole("form")).toBeNull();
    expect(screen.queryByRole("radiogroup")).toBeNull();
  });

  it("unlearns with a ddpm method: its params from its schema, labels as the only scope", async () => {
    const posted: unknown[] = [];
    const { seen } = await renderPage({ role: "engineer", path: `/jobs/new?kind=unlearn&model_version_id=${ORIGINAL.id}`, route: "/jobs/new", load, handler: fakeApi(posted) });
    const method = (await screen.findByLabelText("Method *")) as HTMLSelectElement;
    await waitFor(() => expect(method.disabled).toBe(false));
    // Only the methods of the version's family are offered (asked with ?family=ddpm).
    expect(within(method).getAllByRole("option").map((o) => o.textContent)).toEqual(["Choose a method", "esd · labels"]);
    expect(seen.some((r) => new URL(r.url).searchParams.get("family") === "ddpm")).toBe(true);
    fireEvent.change(method, { target: { value: "esd" } });
    const form = await screen.findByRole("form", { name: "Submit an unlearn job" });
    expect(screen.getByTestId("method-card").textContent).toContain("Erasing Concepts");
    // Defaults and choices come from esd's params schema.
    expect((within(form).getByLabelText("Negative Guidance") as HTMLInputElement).value).toBe("1");
    expect(within(within(form).getByLabelText("Train Method")).getAllByRole("option").map((o) => o.textContent)).toEqual(["(default)", "full", "noxattn", "xattn"]);
    // esd forgets classes only: no choice of scope, and ddpm versions get the judge settings.
    expect(within(form).queryByLabelText("Forget: kind")).toBeNull();
    expect(within(form).getByText("Judge")).toBeTruthy();
    fireEvent.click(within(form).getByRole("button", { name: "Submit unlearn job" }));
    expect(await within(form).findByText("Required")).toBeTruthy();
    fireEvent.change(within(form).getByLabelText("Labels *"), { target: { value: "7" } });
    fireEvent.change(within(form).getByLabelText("Steps"), { target: { value: "0" } });
    fireEvent.click(within(form).getByRole("button", { name: "Submit unlearn job" }));
    expect(await within(form).findByText("Must be at least 1")).toBeTruthy();
    fireEvent.change(within(form).getByLabelText("Steps"), { target: { value: "3" } });
    fireEvent.click(within(form).getByLabelText("Evaluate"));
    fireEvent.click(within(form).getByRole("button", { name: "Submit unlearn job" }));
    await screen.findByText("elsewhere");
    expect(posted).toHaveLength(1);
    expect(posted[0]).toMatchObject({ kind: "unlearn", model_version_id: ORIGINAL.id, method: "esd", forget: { labels: [7] }, evaluate: false, params: { steps: 3, batch_size: 16, negative_guidance: 1 } });
    expect(posted[0]).not.toHaveProperty("reference");
  });

  it("lets a classifier method choose its scope and has no judge", async () => {
    const posted: unknown[] = [];
    await renderPage({ role: "admin", path: `/jobs/new?kind=unlearn&model_version_id=${CNN_VERSION.id}`, route: "/jobs/new", load, handler: fakeApi(posted) });
    const method = (await screen.findByLabelText("Method *")) as HTMLSelectElement;
    await waitFor(() => expect(within(method).queryByText(/^finetune/)).toBeTruthy());
    fireEvent.change(method, { target: { value: "finetune" } });
    const form = await screen.findByRole("form", { name: "Submit an unlearn job" });
    expect(within(form).queryByText("Judge")).toBeNull();
    const scope = within(form).getByLabelText("Forget: kind") as HTMLSelectElement;
    expect(within(scope).getAllByRole("option").map((o) => o.textContent)).toEqual(["Data subjects", "Samples", "Whole classes"]);
    fireEvent.change(scope, { target: { value: "1" } });
    fireEvent.change(within(form).getByLabelText("Sample Ids *"), { target: { value: "s1, s2" } });
    fireEvent.change(within(form).getByLabelText("Reference"), { target: { value: "retrain" } });
    fireEvent.click(within(form).getByRole("button", { name: "Submit unlearn job" }));
    await screen.findByText("elsewhere");
    expect(posted[0]).toMatchObject({ method: "finetune", forget: { sample_ids: ["s1", "s2"] }, reference: "retrain", params: { epochs: 10, optimizer: "sgd" } });
  });

  it("shows the API's error when the methods cannot be listed", async () => {
    await renderPage({
      role: "engineer",
      path: `/jobs/new?kind=unlearn&model_version_id=${ORIGINAL.id}`,
      route: "/jobs/new",
      load,
      handler: fakeApi([], () => json({ detail: "the method registry failed to load", code: "unavailable" }, 503)),
    });
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("Could not load the methods (HTTP 503, unavailable)");
    expect(alert.textContent).toContain("the method registry failed to load");
  });

  it("trains a ddpm model with the train params its family declares", async () => {
    const posted: unknown[] = [];
    await renderPage({ role: "engineer", path: "/jobs/new?kind=train", route: "/jobs/new", load, handler: fakeApi(posted) });
    const form = await screen.findByRole("form", { name: "Submit a train job" });
    // No params until a model says which family's they are.
    expect(within(form).queryByLabelText("Epochs")).toBeNull();
    expect(within(form).queryByLabelText("Steps")).toBeNull();
    const model = within(form).getByLabelText("Model Id *") as HTMLSelectElement;
    await waitFor(() => expect(within(model).queryByText(/^tiny-ddpm/)).toBeTruthy());
    fireEvent.change(model, { target: { value: CNN_MODEL.id } });
    expect((within(form).getByLabelText("Epochs") as HTMLInputElement).value).toBe("1");
    fireEvent.change(model, { target: { value: DDPM_MODEL.id } });
    expect(within(form).queryByLabelText("Epochs")).toBeNull();
    expect((within(form).getByLabelText("Steps") as HTMLInputElement).value).toBe("2000");
    fireEvent.change(within(form).getByLabelText("Dataset Id *"), { target: { value: "ds_1" } });
    fireEvent.change(within(form).getByLabelText("Steps"), { target: { value: "20" } });
    fireEvent.click(within(form).getByRole("button", { name: "Submit train job" }));
    await screen.findByText("elsewhere");
    expect(posted[0]).toMatchObject({ kind: "train", model_id: DDPM_MODEL.id, dataset_id: "ds_1", params: { steps: 20, ema_decay: 0.999 } });
    expect((posted[0] as { params: object }).params).not.toHaveProperty("epochs");
  });

  it("generates from a diffusion version, one image per class to start with", async () => {
    const posted: unknown[] = [];
    await renderPage({ role: "engineer", path: "/jobs/new?kind=generate", route: "/jobs/new", load, handler: fakeApi(posted) });
    const form = await screen.findByRole("form", { name: "Submit a generate job" });
    const model = within(form).getByLabelText("Model") as HTMLSelectElement;
    await waitFor(() => expect(within(model).queryByText(/^tiny-ddpm/)).toBeTruthy());
    // Classifiers do not generate: not offered.
    expect(within(model).queryByText(/^mnist-cnn/)).toBeNull();
    fireEvent.change(model, { target: { value: DDPM_MODEL.id } });
    const version = within(form).getByLabelText("Model Version Id *") as HTMLSelectElement;
    await waitFor(() => expect(within(version).queryByText(/^v2/)).toBeTruthy());
    fireEvent.change(version, { target: { value: UNLEARNED.id } });
    expect((within(form).getByLabelText("Labels *") as HTMLInputElement).value).toBe("0, 1, 2, 3, 4, 5, 6, 7, 8, 9");
    for (const name of ["Seeds", "Guidance Scale", "Num Inference Steps", "Scheduler"]) expect(within(form).getByLabelText(name)).toBeTruthy();
    fireEvent.change(within(form).getByLabelText("Num Inference Steps"), { target: { value: "10" } });
    fireEvent.click(within(form).getByRole("button", { name: "Submit generate job" }));
    await screen.findByText("elsewhere");
    expect(posted[0]).toMatchObject({ kind: "generate", model_version_id: UNLEARNED.id, params: { labels: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], num_inference_steps: 10, scheduler: "ddim" } });
  });

  it("trains a model of a family it has no code for, its form from the declared schema", async () => {
    const posted: unknown[] = [];
    await renderPage({ role: "engineer", path: "/jobs/new?kind=train", route: "/jobs/new", load, handler: fakeApi(posted) });
    const form = await screen.findByRole("form", { name: "Submit a train job" });
    const model = within(form).getByLabelText("Model Id *") as HTMLSelectElement;
    await waitFor(() => expect(within(model).queryByText(/^people-lm/)).toBeTruthy());
    fireEvent.change(model, { target: { value: LM_MODEL.id } });
    // causal_lm's own fields, defaults and help, and none of an image family's.
    expect((within(form).getByLabelText("Epochs") as HTMLInputElement).value).toBe("3");
    expect((within(form).getByLabelText("Max Length") as HTMLInputElement).value).toBe("256");
    expect(within(form).getByText("Tokens per record; longer ones are cut.")).toBeTruthy();
    expect(within(form).queryByLabelText("Optimizer")).toBeNull();
    expect(within(form).queryByLabelText("Steps")).toBeNull();
    // A nested optional object behind the schema's own $ref: off until switched on.
    expect(within(form).queryByLabelText("R")).toBeNull();
    fireEvent.click(within(form).getByLabelText("Lora"));
    expect((within(form).getByLabelText("R") as HTMLInputElement).value).toBe("8");
    fireEvent.change(within(form).getByLabelText("Dataset Id *"), { target: { value: "ds_1" } });
    fireEvent.change(within(form).getByLabelText("Max Length"), { target: { value: "4" } });
    fireEvent.click(within(form).getByRole("button", { name: "Submit train job" }));
    expect(await within(form).findByText("Must be at least 8")).toBeTruthy();
    fireEvent.change(within(form).getByLabelText("Max Length"), { target: { value: "128" } });
    fireEvent.change(within(form).getByLabelText("R"), { target: { value: "4" } });
    fireEvent.click(within(form).getByRole("button", { name: "Submit train job" }));
    await screen.findByText("elsewhere");
    expect(posted[0]).toEqual({ kind: "train", model_id: LM_MODEL.id, dataset_id: "ds_1", params: { epochs: 3, lr: 0.0001, max_length: 128, lora: { r: 4, alpha: 16 } } });
  });

  it("opens a train form on a model named in the URL with its family's params", async () => {
    await renderPage({ role: "engineer", path: `/jobs/new?kind=train&model_id=${LM_MODEL.id}`, route: "/jobs/new", load, handler: fakeApi([]) });
    const form = await screen.findByRole("form", { name: "Submit a train job" });
    expect((within(form).getByLabelText("Max Length") as HTMLInputElement).value).toBe("256");
  });

  it("generates with the declared params of any family that generates, and only those", async () => {
    const posted: unknown[] = [];
    await renderPage({ role: "engineer", path: "/jobs/new?kind=generate", route: "/jobs/new", load, handler: fakeApi(posted) });
    const form = await screen.findByRole("form", { name: "Submit a generate job" });
    const model = within(form).getByLabelText("Model") as HTMLSelectElement;
    await waitFor(() => expect(within(model).queryByText(/^people-lm/)).toBeTruthy());
    expect(within(model).getAllByRole("option").map((o) => o.textContent)).toEqual(["Choose a model", "tiny-ddpm (ddpm)", "people-lm (causal_lm)", "tiny-t2i (text2image)"]);
    fireEvent.change(model, { target: { value: LM_MODEL.id } });
    const version = within(form).getByLabelText("Model Version Id *") as HTMLSelectElement;
    await waitFor(() => expect(within(version).queryByText(/^v1/)).toBeTruthy());
    fireEvent.change(version, { target: { value: LM_VERSION.id } });
    expect(within(form).queryByLabelText("Labels *")).toBeNull();
    fireEvent.change(within(form).getByLabelText("Prompts *"), { target: { value: "Who is Ada Moreau?" } });
    fireEvent.click(within(form).getByRole("button", { name: "Submit generate job" }));
    await screen.findByText("elsewhere");
    expect(posted[0]).toMatchObject({ kind: "generate", model_version_id: LM_VERSION.id, params: { prompts: ["Who is Ada Moreau?"], max_new_tokens: 64 } });
  });

  it("shows the judge for every judged family (text2image too) and no other", async () => {
    await renderPage({ role: "engineer", path: `/jobs/new?kind=unlearn&model_version_id=${T2I_VERSION.id}`, route: "/jobs/new", load, handler: fakeApi([]) });
    const method = (await screen.findByLabelText("Method *")) as HTMLSelectElement;
    await waitFor(() => expect(within(method).queryByText(/^uce/)).toBeTruthy());
    fireEvent.change(method, { target: { value: "uce" } });
    const form = await screen.findByRole("form", { name: "Submit an unlearn job" });
    expect(within(form).getByText("Judge")).toBeTruthy();
    // uce takes labels and concepts, and so does text2image: both offered.
    const scope = within(form).getByLabelText("Forget: kind") as HTMLSelectElement;
    expect(within(scope).getAllByRole("option").map((o) => o.textContent)).toEqual(["Whole classes", "concept"]);
  });

  it("offers an unlearn method only the scopes its model's family supports", async () => {
    const posted: unknown[] = [];
    await renderPage({ role: "engineer", path: `/jobs/new?kind=unlearn&model_version_id=${LM_VERSION.id}`, route: "/jobs/new", load, handler: fakeApi(posted) });
    const method = (await screen.findByLabelText("Method *")) as HTMLSelectElement;
    await waitFor(() => expect(within(method).queryByText(/^grad_diff/)).toBeTruthy());
    fireEvent.change(method, { target: { value: "grad_diff" } });
    const form = await screen.findByRole("form", { name: "Submit an unlearn job" });
    expect(within(form).queryByText("Judge")).toBeNull();
    // The method would take labels; causal_lm declares subjects and samples only.
    const scope = within(form).getByLabelText("Forget: kind") as HTMLSelectElement;
    expect(within(scope).getAllByRole("option").map((o) => o.textContent)).toEqual(["Data subjects", "Samples"]);
    fireEvent.change(within(form).getByLabelText("Subject Ids *"), { target: { value: "person-7" } });
    fireEvent.click(within(form).getByRole("button", { name: "Submit unlearn job" }));
    await screen.findByText("elsewhere");
    expect(posted[0]).toMatchObject({ kind: "unlearn", model_version_id: LM_VERSION.id, method: "grad_diff", forget: { subject_ids: ["person-7"] } });
    expect(posted[0]).not.toHaveProperty("judge");
  });

  it("evaluates with the judge where the family is judged and the family's scopes", async () => {
    await renderPage({ role: "engineer", path: `/jobs/new?kind=evaluate&model_version_id=${T2I_VERSION.id}`, route: "/jobs/new", load, handler: fakeApi([]) });
    let form = await screen.findByRole("form", { name: "Submit a evaluate job" });
    expect(within(form).getByText("Judge")).toBeTruthy();
    cleanupPage();
    document.body.innerHTML = "";
    await renderPage({ role: "engineer", path: `/jobs/new?kind=evaluate&model_version_id=${CNN_VERSION.id}`, route: "/jobs/new", load, handler: fakeApi([]) });
    form = await screen.findByRole("form", { name: "Submit a evaluate job" });
    expect(within(form).queryByText("Judge")).toBeNull();
    fireEvent.click(within(form).getByLabelText("Forget"));
    expect(within(form).getByLabelText("Labels")).toBeTruthy();
    expect(within(form).queryByText("Concept")).toBeNull();
  });
});
