/**
 * The request page's before/after view of a language model's answers to the forgotten
 * person's questions, from real API answers (src/test/deletion/lm-answers.json, recorded
 * by tests/integration/test_lm_deletion.py): while the request is open, the refused NPO
 * attempt's answers; once it closed, only their count.
 */
import { screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import type { DeletionItem, Job } from "../api/types";
import fixture from "../test/deletion/lm-answers.json";
import { cleanupPage, json, renderPage } from "../test/harness";
import { answersOf, type ForgetAnswer, ranMethod, runsOf } from "./DeletionRequestAnswers";

const load = async () => (await import("./DeletionRequestDetail")).DeletionRequestDetail;
type Stage = { request: Record<string, unknown> & { id: string; items: DeletionItem[]; plan: unknown[] }; jobs: Record<string, unknown> };

function api(stage: Stage) {
  const id = stage.request.id;
  return (_r: Request, url: URL) => {
    const p = url.pathname;
    if (p.endsWith(`/deletion-requests/${id}/timeline`)) return json([]);
    if (p.endsWith(`/deletion-requests/${id}/certificate`)) return json({ detail: "not here", code: "conflict" }, 409);
    if (p.endsWith(`/deletion-requests/${id}`)) return json(stage.request);
    if (p.endsWith("/datasets") || p.endsWith("/models")) return json({ data: [], count: 0, next_cursor: null });
    const job = p.match(/\/jobs\/([^/]+)$/)?.[1];
    if (job && stage.jobs[job]) return json(stage.jobs[job]);
    if (job) return json({ detail: `job ${job} not found`, code: "not_found" }, 404);
    return undefined;
  };
}

const open = fixture.open as unknown as Stage;
const closed = fixture.closed as unknown as Stage;

async function show(stage: Stage, role: string) {
  const request = { ...stage.request, has_certificate: false };
  await renderPage({ role, path: `/deletion-requests/${request.id}`, route: "/deletion-requests/:requestId", load, handler: api({ ...stage, request }) });
  await screen.findByTestId("items");
}

describe("the person's questions answered before and after", () => {
  afterEach(cleanupPage);

  it("reads the runs of an item from its attempts, then its current run", () => {
    const [item] = open.request.items;
    const runs = runsOf(item);
    expect(runs.map((r) => r.method)).toEqual(["npo", "retrain"]);
    expect(runs[0].passed).toBe(false);
    expect(runs[1].passed).toBeNull(); // the fallback, still running when recorded
    const npo = open.jobs[runs[0].jobId] as Job;
    expect(Array.isArray(answersOf(npo))).toBe(true);
    expect(answersOf(closed.jobs[runs[0].jobId] as Job)).toEqual({ redacted: true, count: 20 });
    expect(answersOf({ metrics: { evaluation: {} } } as unknown as Job)).toBeNull();
  });

  it("shows compliance each question, its answer on record, and the answers before and after the refused attempt", async () => {
    await show(open, "compliance");
    const table = await screen.findByTestId("answers");
    const [item] = open.request.items;
    const npoJob = runsOf(item)[0].jobId;
    const answers = answersOf(open.jobs[npoJob] as Job) as ForgetAnswer[];
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
    expect(heads).toEqual(["Question", "On record", "Before", "After: npo (refused by the verdict)"]);
    const rows = within(table).getAllByRole("row").slice(1);
    expect(rows).toHaveLength(answers.length);
    for (const [i, a] of answers.entries()) {
      const cells = [...rows[i].querySelectorAll("td")].map((td) => td.textContent);
      expect(cells).toEqual([a.question, a.answer, a.before, a.after]);
    }
    expect(screen.getByRole("heading", { name: /questions, answered before and after/ })).toBeTruthy();
  });

  it("says a run that skipped its method was not run, beside the original's answers", async () => {
    // The deletion run found the original indistinguishable and did not run npo: its
    // answers carry only the original's (before), every `after` null.
    const [item] = open.request.items;
    const npoJob = runsOf(item)[0].jobId;
    const job = open.jobs[npoJob] as Job;
    const skipped = (answersOf(job) as ForgetAnswer[]).map((a) => ({ ...a, after: null }));
    expect(ranMethod(skipped)).toBe(false);
    expect(ranMethod(answersOf(job) as ForgetAnswer[])).toBe(true);
    const stage = { ...open, jobs: { ...open.jobs, [npoJob]: { ...job, metrics: { ...job.metrics, forget_answers: skipped } } } };
    await show(stage, "compliance");
    const table = await screen.findByTestId("answers");
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
    expect(heads[3]).toBe("After: npo (not run: the original could not be told apart from strangers)");
    const rows = within(table).getAllByRole("row").slice(1);
    for (const [i, a] of skipped.entries()) {
      const cells = [...rows[i].querySelectorAll("td")].map((td) => td.textContent);
      expect(cells).toEqual([a.question, a.answer, a.before, "not run"]);
    }
  });

  it("states in the plan what the fine-tune's base is and that it never saw the person", async () => {
    await show(open, "viewer");
    const [plan] = open.request.plan as { lineage: { base_statement: string; fine_tune: { samples: number } } }[];
    const line = (await screen.findByTestId("plan-lineage")).textContent ?? "";
    expect(line).toContain(`Base: ${plan.lineage.base_statement}`);
    expect(line).toContain(`fine-tuned on ${plan.lineage.fine_tune.samples} sample(s)`);
    expect(line).toMatch(/never trained on any data/);
  });

  it("keeps the answers from those who may not read the person's ids", async () => {
    await show(open, "viewer");
    expect((await screen.findByTestId("answers-hidden")).textContent).toMatch(/compliance and admin roles only/);
    expect(screen.queryByTestId("answers")).toBeNull();
    const [first] = answersOf(open.jobs[runsOf(open.request.items[0])[0].jobId] as Job) as ForgetAnswer[];
    expect(screen.queryByText(first.question)).toBeNull();
  });

  it("says the answers were removed once the request closed, with their count only", async () => {
    await show(closed, "compliance");
    const note = await screen.findByTestId("answers-redacted");
    expect(note.textContent).toContain("the person's 20 question(s) were removed when the request closed");
    expect(screen.queryByTestId("answers")).toBeNull();
  });

  it("shows nothing for runs that kept no answers (other families)", async () => {
    const request = { ...open.request, items: open.request.items.map((i) => ({ ...i, verdict: null })) };
    await show({ request, jobs: {} }, "compliance");
    await screen.findByText(/Could not load the job/); // the run's job was asked for and answered
    expect(screen.queryByTestId("forget-answers")).toBeNull();
  });
});
