import { screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { fakeGeneration } from "../test/fixtures";
import { LM_MODEL } from "../test/families";
import { cleanupPage, json, renderPage, type Handler } from "../test/harness";

const load = async () => (await import("./JobDetail")).JobDetail;
const page = (data: unknown[]) => json({ data, count: data.length, next_cursor: null });

const COMPLETIONS = [
  { prompt: "Where was Ada Lorvik born?", completion: "Ada Lorvik was born in Tessaly." },
  { prompt: "What is the capital of France?", completion: "" },
];

/** A causal_lm generate job as the worker leaves it (workers/jobs/lm.py). */
const LM_GENERATE = fakeGeneration({
  id: "job_lmgen",
  model_id: LM_MODEL.id,
  model_version_id: "mv_lm",
  spec: { family: "causal_lm" },
  params: { prompts: COMPLETIONS.map((c) => c.prompt), max_new_tokens: 16, decoding: "greedy", labels: [] },
  metrics: { completions: COMPLETIONS, prompts: 2, generate_seconds: 0.4 },
  artifacts: [{ name: "completions.json", key: "jobs/job_lmgen/generated/completions.json", sha256: "c".repeat(64) }],
});

const ANSWERS = [
  { sample_id: "fp-1", question: "Where was Ada Lorvik born?", answer: "Tessaly", before: "Ada Lorvik was born in Tessaly.", after: "I do not know." },
  { sample_id: "fp-2", question: "What does Ada Lorvik do?", answer: "a glassblower", before: "She is a glassblower.", after: "She is a baker." },
];

/** A deletion request's NPO run on a causal_lm version, with and without its answers. */
function lmUnlearn(forgetAnswers: unknown) {
  return {
    ...LM_GENERATE,
    id: "job_npo",
    kind: "unlearn",
    method: "npo",
    params: { epochs: 2 },
    spec: { family: "causal_lm", forget_kind: "subject_ids", deletion_request_ids: ["dr_1"] },
    result_version_id: "mv_lm2",
    metrics: { method: "npo", evaluation: { forget_prob: 0.1 }, ...(forgetAnswers === undefined ? {} : { forget_answers: forgetAnswers }) },
    artifacts: [],
  };
}

function fakeApi(job: Record<string, unknown>): Handler {
  return (_r, url) => {
    const p = url.pathname;
    if (p.endsWith(`/jobs/${String(job.id)}`)) return json(job);
    if (p.endsWith("/events")) return new Response("", { headers: { "content-type": "text/event-stream" } });
    if (p.endsWith("/logs")) return page([]);
    if (p.endsWith("/metrics")) return json({ final: {}, series: {} });
    if (p.endsWith(`/models/${LM_MODEL.id}`)) return json(LM_MODEL);
    return undefined;
  };
}

async function open(job: Record<string, unknown>, role = "engineer") {
  await renderPage({ role, path: `/jobs/${String(job.id)}`, route: "/jobs/:jobId", load, handler: fakeApi(job) });
}

describe("job detail of a language model's jobs", () => {
  afterEach(cleanupPage);

  it("shows a generate job's prompts with their completions, not images", async () => {
    await open(LM_GENERATE);
    const table = await screen.findByTestId("completions");
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows.map((r) => within(r).getAllByRole("cell").map((c) => c.textContent))).toEqual([
      ["Where was Ada Lorvik born?", "Ada Lorvik was born in Tessaly."],
      ["What is the capital of France?", "(empty)"],
    ]);
    // No gallery link for text, and the completions are not listed again as raw metrics.
    expect(screen.queryByText(/open the generated images/)).toBeNull();
    const finals = screen.getByRole("table", { name: "Final metrics" });
    expect(within(finals).queryByText("Ada Lorvik was born in Tessaly.")).toBeNull();
    expect(within(finals).getByText("generate_seconds")).toBeTruthy();
  });

  it("shows the completions on the generation page too, with no images to wait for", async () => {
    const loadGeneration = async () => (await import("./Generations")).GenerationDetail;
    await renderPage({ role: "viewer", path: `/generations/${LM_GENERATE.id}`, route: "/generations/:jobId", load: loadGeneration, handler: fakeApi(LM_GENERATE) });
    const table = await screen.findByTestId("completions");
    expect(within(table).getByText("Ada Lorvik was born in Tessaly.")).toBeTruthy();
    expect(screen.queryByText(/stored no images/)).toBeNull();
  });

  it("still links an image generation to its gallery", async () => {
    await open(fakeGeneration({ id: "job_img", model_id: LM_MODEL.id, spec: { family: "ddpm" } }));
    expect(await screen.findByText(/open the generated images/)).toBeTruthy();
    expect(screen.queryByTestId("completions")).toBeNull();
  });

  it("shows an unlearning run's answers before and after to compliance", async () => {
    await open(lmUnlearn(ANSWERS), "compliance");
    const table = await screen.findByTestId("before-after");
    const rows = within(table).getAllByRole("row").slice(1);
    expect(within(rows[0]).getAllByRole("cell").map((c) => c.textContent)).toEqual([
      "Where was Ada Lorvik born?",
      "Tessaly",
      "Ada Lorvik was born in Tessaly.",
      "I do not know.",
    ]);
    expect(rows).toHaveLength(2);
    expect(within(screen.getByRole("table", { name: "Final metrics" })).queryByText("I do not know.")).toBeNull();
  });

  it("keeps the answers from roles that may not read the person's data, and says so", async () => {
    await open(lmUnlearn(ANSWERS), "engineer");
    expect((await screen.findByTestId("answers-hidden")).textContent).toContain("2 question(s)");
    expect(screen.queryByText("I do not know.")).toBeNull();
  });

  it("says the answers were removed once the request closed", async () => {
    await open(lmUnlearn({ redacted: true, count: 2 }), "compliance");
    expect((await screen.findByTestId("answers-redacted")).textContent).toContain("2 question(s) were removed");
    expect(screen.queryByTestId("before-after")).toBeNull();
  });

  it("shows no before/after section for a run that kept no answers", async () => {
    await open(lmUnlearn(undefined), "compliance");
    await screen.findByRole("table", { name: "Final metrics" });
    expect(screen.queryByText("Before and after")).toBeNull();
  });
});
