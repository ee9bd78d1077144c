import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it } from "vitest";

import { cleanupPage, json, renderPage } from "../test/harness";

const load = async () => (await import("./Compare")).Compare;

function fakeJob(over: Record<string, unknown> = {}) {
  return {
    id: "job_01a2salun00000001",
    kind: "unlearn",
    state: "succeeded",
    queue: "cpu",
    model_id: "mdl_1",
    dataset_id: "ds_1",
    model_version_id: "mv_orig",
    result_version_id: "mv_new",
    method: "salun",
    params: { epochs: 2 },
    spec: { forget_kind: "labels", forget_count: 60, reference_job_id: "job_01a2retrain00000002" },
    progress: 1,
    metrics: {},
    artifacts: [],
    error: null,
    attempt: 1,
    worker: "w",
    cancel_requested: false,
    created_at: "2026-11-01T10:00:00Z",
    created_by: "key_1",
    started_at: "2026-11-01T10:00:01Z",
    finished_at: "2026-11-01T10:00:09Z",
    heartbeat_at: null,
    wall_seconds: 8,
    peak_memory_mb: 300,
    comparison: null,
    ...over,
  };
}

function row(over: Record<string, unknown> = {}) {
  return {
    job_id: "job_01a2salun00000001",
    kind: "unlearn",
    state: "succeeded",
    method: "salun",
    params: { epochs: 2 },
    model_id: "mdl_1",
    model_version_id: "mv_orig",
    result_version_id: "mv_new",
    forget_kind: "labels",
    forget_count: 60,
    exact: false,
    UA: 0.95,
    RA: 0.9,
    TA: 0.85,
    MIA: 0.99,
    loss_auc: 0.51,
    reference_job_id: "job_01a2retrain00000002",
    avg_gap: 0.0325,
    seconds: 4,
    speedup: 12.5,
    has_views: true,
    created_at: "2026-11-01T10:00:00Z",
    finished_at: "2026-11-01T10:00:09Z",
    ...over,
  };
}

const RETRAIN = row({ job_id: "job_01a2retrain00000002", method: "retrain", exact: true, UA: 1, RA: 0.92, TA: 0.86, MIA: 1, avg_gap: null, speedup: null, seconds: 50, reference_job_id: null });

const VIEWS = {
  job_id: "job_01a2salun00000001",
  format: 1,
  dataset_id: "ds_1",
  num_classes: 3,
  models: ["after", "before", "reference"],
  forget_labels: [1],
  counts: { forget: 4, retain: 6, test: 6 },
  class_counts: { forget: [0, 4, 0], retain: [3, 0, 3], test: [2, 2, 2] },
  class_accuracy: {
    forget: { after: [null, 0.25, null], before: [null, 1, null], reference: [null, 0, null] },
    retain: { after: [1, null, 0.67], before: [1, null, 1], reference: [1, null, 1] },
    test: { after: [1, 0, 0.5], before: [1, 1, 1], reference: [1, 0, 1] },
  },
  confusion: {
    test: { after: [[2, 0, 0], [1, 0, 1], [0, 1, 1]], before: [[2, 0, 0], [0, 2, 0], [0, 0, 2]], reference: [[2, 0, 0], [1, 0, 1], [0, 0, 2]] },
    forget: { after: [[0, 0, 0], [2, 1, 1], [0, 0, 0]], before: [[0, 0, 0], [0, 4, 0], [0, 0, 0]], reference: [[0, 0, 0], [3, 0, 1], [0, 0, 0]] },
  },
  attack: {
    members: "forget",
    nonmembers: "test",
    roc: { after: [[0, 0, null], [0.5, 0.6, 1.2], [1, 1, 3.1]], before: [[0, 0, null], [0.1, 0.9, 0.2], [1, 1, 3]] },
    auc: { after: 0.55, before: 0.93 },
    at_risk: [
      { sample_id: "train-00017", label: 1, predicted: 1, loss: 0.02, score: 0.97, score_before: 1, image_url: "/api/v1/datasets/ds_1/samples/train-00017/image" },
    ],
  },
  feature_map: {
    basis: "pca of before + after",
    explained_variance_ratio: [0.4, 0.2],
    points: [
      { sample_id: "train-00017", label: 1, forget: true, after: [0.1, 0.2], before: [1, 2], predicted_after: 1, predicted_before: 1 },
      { sample_id: "test-1", label: 0, forget: false, after: [0.3, -0.2], before: [0.2, -0.1], predicted_after: 0, predicted_before: 0 },
    ],
  },
  cka: { layers: ["body.0.0", "fc"], batch_size: 8, to_original: [0.99, 0.41], to_reference: [0.8, 0.77] },
};

describe("compare page", () => {
  afterEach(cleanupPage);

  it("starts empty, lists unlearning jobs to pick, searches and compares the picked ones", async () => {
    const user = userEvent.setup();
    const { seen } = await renderPage({
      role: "viewer",
      path: "/compare",
      route: "/compare",
      load,
      handler: (_r, url) => {
        if (url.pathname.endsWith("/jobs")) {
          return json({ data: [fakeJob(), fakeJob({ id: "job_01a2finetune000003", method: "finetune" })], count: 2, next_cursor: null });
        }
        if (url.pathname.endsWith("/compare")) return json({ data: [row()], count: 1 });
        return undefined;
      },
    });
    expect(screen.getByText("Pick one or more unlearning jobs to compare them.")).toBeTruthy();
    const list = await screen.findByRole("list", { name: "Succeeded unlearn jobs" });
    expect(within(list).getAllByRole("checkbox")).toHaveLength(2);
    const query = seen.map((r) => new URL(r.url)).find((u) => u.pathname.endsWith("/jobs"));
    expect(query?.searchParams.get("kind")).toBe("unlearn");
    expect(query?.searchParams.get("state")).toBe("succeeded");

    await user.type(screen.getByLabelText("Search"), "finet");
    expect(within(list).getAllByRole("checkbox")).toHaveLength(1);
    await user.clear(screen.getByLabelText("Search"));
    await user.type(screen.getByLabelText("Search"), "nothing-like-this");
    expect(screen.getByText(/No unlearn job matches/)).toBeTruthy();
    await user.clear(screen.getByLabelText("Search"));

    await user.click(within(screen.getByRole("list", { name: "Succeeded unlearn jobs" })).getAllByRole("checkbox")[0]);
    const table = await screen.findByRole("table", { name: "Selected jobs side by side" });
    expect(within(table).getByText("95.0 %")).toBeTruthy(); // UA
    expect(within(table).getByText("3.25 %")).toBeTruthy(); // Avg. gap
    expect(within(table).getByText("×12.5")).toBeTruthy();
    const compareCall = seen.map((r) => new URL(r.url)).find((u) => u.pathname.endsWith("/compare"));
    expect(compareCall?.searchParams.get("jobs")).toBe("job_01a2salun00000001");
    expect(screen.getByRole("figure", { name: "TA against UA, one point per job" })).toBeTruthy();
    await user.selectOptions(screen.getByLabelText("Forgetting (x)"), "MIA");
    expect(screen.getByRole("figure", { name: "TA against MIA, one point per job" })).toBeTruthy();
  });

  it("shows a job's views: class accuracy, prediction matrix, feature map, CKA and the attack", async () => {
    const user = userEvent.setup();
    const { seen } = await renderPage({
      role: "viewer",
      path: "/compare?jobs=job_01a2salun00000001,job_01a2retrain00000002&focus=job_01a2salun00000001",
      route: "/compare",
      load,
      handler: (_r, url) => {
        if (url.pathname.endsWith("/jobs")) return json({ data: [], count: 0, next_cursor: null });
        if (url.pathname.endsWith("/compare")) return json({ data: [row(), RETRAIN], count: 2 });
        if (url.pathname.endsWith("/jobs/job_01a2salun00000001/views")) return json(VIEWS);
        return undefined;
      },
    });
    const table = await screen.findByRole("table", { name: "Selected jobs side by side" });
    expect(within(table).getAllByRole("row")).toHaveLength(3);
    expect(within(table).getByRole("button", { name: "Showing of salun · 00000001" }).getAttribute("aria-pressed")).toBe("true");
    expect(screen.getByText(/No succeeded unlearn job yet/)).toBeTruthy();

    // Class-wise accuracy, with its numbers in a table.
    const accuracy = await screen.findByRole("table", { name: "Accuracy per class on the test set" });
    expect(within(accuracy).getAllByRole("row")).toHaveLength(4);
    await user.selectOptions(screen.getAllByLabelText("Split")[0], "forget");
    const forget = screen.getByRole("table", { name: "Accuracy per class on the forget set" });
    expect(within(forget).getAllByRole("row")).toHaveLength(2); // header + class 1 only
    expect(within(forget).getByText("25.0 %")).toBeTruthy();

    // The prediction matrix: rows are true classes, a title on each cell.
    const heatmap = screen.getByRole("table", { name: /Rows: true class; columns: predicted class \(unlearned model, test set\)/ });
    expect(within(heatmap).getByTitle("true 1 → predicted 2: 1 (50.0 %)")).toBeTruthy();
    await user.selectOptions(screen.getByLabelText("Model"), "before");
    expect(screen.getByRole("table", { name: /original model, test set/ })).toBeTruthy();
    await user.selectOptions(screen.getAllByLabelText("Split")[1], "forget");
    const forgetMatrix = screen.getByRole("table", { name: /original model, forget set/ });
    expect(within(forgetMatrix).getAllByRole("row")).toHaveLength(2); // only class 1 is in the forget set

    expect(screen.getByRole("figure", { name: "Feature map, Before (original): 1 forget and 1 test points" })).toBeTruthy();
    expect(screen.getByRole("figure", { name: "Feature map, After (unlearned): 1 forget and 1 test points" })).toBeTruthy();

    const cka = screen.getByRole("table", { name: "CKA per layer" });
    expect(within(cka).getByText("0.410")).toBeTruthy();
    expect(within(cka).getByText("0.770")).toBeTruthy();

    expect(screen.getByRole("figure", { name: "Threshold sweep (ROC)" })).toBeTruthy();
    expect(screen.getByText(/AUC: unlearned 0.550, original 0.930/)).toBeTruthy();
    const risky = screen.getByRole("table", { name: "Forget samples the attack still calls members most confidently" });
    expect(within(risky).getByText("train-00017")).toBeTruthy();
    await waitFor(() => expect(seen.some((r) => new URL(r.url).pathname === "/api/v1/datasets/ds_1/samples/train-00017/image")).toBe(true));
    expect(seen.find((r) => r.url.includes("/image"))?.headers.get("Authorization")).toBe("Bearer exp_test_key");

    // Removing a job updates the comparison (and the URL it is read from).
    await user.click(within(table).getByRole("button", { name: "Remove retrain · 00000002" }));
    await waitFor(() => expect(seen.some((r) => new URL(r.url).searchParams.get("jobs") === "job_01a2salun00000001")).toBe(true));
  });

  it("says why a job has no views, and shows the API's error for a bad comparison", async () => {
    await renderPage({
      role: "viewer",
      path: "/compare?jobs=job_01a2salun00000001&focus=job_01a2salun00000001",
      route: "/compare",
      load,
      handler: (_r, url) => {
        if (url.pathname.endsWith("/jobs")) return json({ data: [], count: 0, next_cursor: null });
        if (url.pathname.endsWith("/compare")) return json({ detail: "only unlearn and evaluate jobs can be compared; not: job_01a2salun00000001 (train)", code: "unprocessable" }, 422);
        if (url.pathname.endsWith("/views")) return json({ detail: "job job_01a2salun00000001 has no stored views: it ran before views existed", code: "not_found" }, 404);
        return undefined;
      },
    });
    await waitFor(() => expect(screen.getAllByRole("alert")).toHaveLength(2));
    const text = screen.getAllByRole("alert").map((a) => a.textContent ?? "");
    expect(text.some((t) => t.includes("Could not compare these jobs (HTTP 422, unprocessable)") && t.includes("only unlearn and evaluate jobs"))).toBe(true);
    expect(text.some((t) => t.includes("No views for this job (HTTP 404, not_found)") && t.includes("ran before views existed"))).toBe(true);
  });

  it("shows loading while the comparison is on its way", async () => {
    await renderPage({
      role: "viewer",
      path: "/compare?jobs=job_01a2salun00000001",
      route: "/compare",
      load,
      handler: (_r, url) => {
        if (url.pathname.endsWith("/jobs")) return json({ data: [], count: 0, next_cursor: null });
        if (url.pathname.endsWith("/compare")) return new Promise<Response>(() => undefined);
        return undefined;
      },
    });
    await waitFor(() => expect(screen.getAllByRole("status").some((s) => s.textContent?.includes("Loading the comparison"))).toBe(true));
    expect(screen.getByText(/Choose .Show views. on a row/)).toBeTruthy();
  });
});
