import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { cleanupPage, json, renderPage, type Handler } from "../test/harness";

const load = async () => (await import("./DatasetDetail")).DatasetDetail;

function fakeDataset(over: Record<string, unknown> = {}) {
  return {
    id: "ds_t",
    name: "fictitious-people",
    description: "",
    source: "builtin:fictitious-people",
    modality: "text",
    label_names: [],
    image_shape: [],
    current_version: 2,
    created_at: "2026-11-01T10:00:00Z",
    created_by: null,
    num_samples: 3,
    num_subjects: 2,
    ...over,
  };
}

function fakeSample(over: Record<string, unknown> = {}) {
  return {
    sample_id: "person-0001-q01",
    subject_id: "person-0001",
    label: null,
    label_name: null,
    caption: null,
    split: "train",
    image_url: null,
    text: null,
    question: null,
    answer: null,
    paraphrased_answer: null,
    perturbed_answers: null,
    kind: null,
    ...over,
  };
}

const TEXT_SAMPLES = [
  fakeSample({
    question: "Where was Demith Trakhurk born?",
    answer: "Demith Trakhurk was born in Jaiia, Koora.",
    paraphrased_answer: "The birthplace of Demith Trakhurk is Jaiia, Koora.",
    perturbed_answers: ["The birthplace of Demith Trakhurk is Saor, Keand.", "The birthplace of Demith Trakhurk is Duovo, Droary.", "The birthplace of Demith Trakhurk is Naiene, Soyoia."],
    kind: "qa",
  }),
  fakeSample({ sample_id: "person-0001-bio", text: "Demith Trakhurk was born on 2 October 1945.", kind: "biography" }),
  fakeSample({ sample_id: "world-0001", subject_id: null, question: "In which country is Saor?", answer: "Saor is in Keand.", kind: "world_fact" }),
];

function handlerFor(dataset: Record<string, unknown>, samples: unknown[]): Handler {
  return (_r, url) => {
    if (url.pathname.endsWith("/samples")) return json({ data: samples, count: samples.length, next_cursor: null });
    if (url.pathname.endsWith("/versions")) {
      return json([{ id: "dsv_1", dataset_id: dataset.id, version: 1, content_hash: "ab".repeat(32), num_samples: samples.length, split_counts: { train: samples.length }, reason: "initial import", created_at: "2026-11-01T10:00:00Z" }]);
    }
    if (url.pathname.endsWith(`/datasets/${String(dataset.id)}`)) return json(dataset);
    return undefined;
  };
}

describe("dataset sample browser", () => {
  afterEach(cleanupPage);

  it("shows a text dataset's questions, answers and texts instead of images", async () => {
    const { seen } = await renderPage({ role: "viewer", path: "/datasets/ds_t", route: "/datasets/:datasetId", load, handler: handlerFor(fakeDataset(), TEXT_SAMPLES) });
    const list = await screen.findByRole("list", { name: "Text samples" });
    const items = within(list).getAllByRole("listitem").filter((li) => li.classList.contains("text-sample"));
    expect(items).toHaveLength(3);
    expect(within(items[0]).getByText("Where was Demith Trakhurk born?")).toBeTruthy();
    expect(within(items[0]).getByText("Demith Trakhurk was born in Jaiia, Koora.")).toBeTruthy();
    expect(within(items[0]).getByText("Evaluation answers")).toBeTruthy();
    expect(within(items[0]).getByText("Wrong (3)")).toBeTruthy();
    expect(within(items[1]).getByText("Demith Trakhurk was born on 2 October 1945.")).toBeTruthy();
    expect(within(items[1]).getByText(/biography/)).toBeTruthy();
    expect(within(items[2]).getByText("no subject")).toBeTruthy();
    // Text has no pictures and no labels to filter by.
    expect(list.querySelector("img")).toBeNull();
    expect(screen.queryByLabelText("Label")).toBeNull();
    expect(screen.getByText("text (question/answer pairs and texts)")).toBeTruthy();
    expect(screen.queryByText("Image shape")).toBeNull();

    // A subject's id filters the browser to that person's records.
    fireEvent.click(within(items[0]).getByRole("button", { name: "person-0001" }));
    await waitFor(() => {
      const asked = seen.filter((r) => new URL(r.url).pathname.endsWith("/samples")).map((r) => new URL(r.url).searchParams.get("subject_id"));
      expect(asked).toContain("person-0001");
    });
  });

  it("says a text sample's words were deleted when an older version lists it", async () => {
    const purged = fakeSample({ sample_id: "person-0002-q01", subject_id: "3f9a…" });
    await renderPage({ role: "viewer", path: "/datasets/ds_t?version=1", route: "/datasets/:datasetId", load, handler: handlerFor(fakeDataset(), [purged]) });
    expect(await screen.findByText("Text deleted by a deletion request.")).toBeTruthy();
  });

  it("keeps the image grid and the label filter for an image dataset", async () => {
    const images = fakeDataset({ id: "ds_i", name: "digits", modality: "images", label_names: ["0", "1"], image_shape: [8, 8, 1] });
    const sample = fakeSample({ sample_id: "digits-0001", subject_id: null, label: 1, label_name: "1", image_url: "/api/v1/datasets/ds_i/samples/digits-0001/image" });
    await renderPage({ role: "viewer", path: "/datasets/ds_i", route: "/datasets/:datasetId", load, handler: handlerFor(images, [sample]) });
    expect(await screen.findByRole("img", { name: /Sample digits-0001, label 1/ })).toBeTruthy();
    expect(screen.getByLabelText("Label")).toBeTruthy();
    expect(screen.getByText("8 × 8 × 1")).toBeTruthy();
    expect(screen.queryByRole("list", { name: "Text samples" })).toBeNull();
  });
});
