/**
 * The request page shows what each verdict proves, from real API answers (see
 * src/test/deletion/README.md for where each fixture comes from). Expected texts are
 * computed from the fixtures, so a field the page stops showing fails here.
 */
import { fireEvent, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import type { Attempt, CheckRecord, PlanItem, Verdict } from "../api/types";
import { formatValue } from "../components/KeyValue";
import { duration } from "../components/Time";
import liraVerified from "../test/deletion/lira-verified.json";
import liraVerifying from "../test/deletion/lira-verifying.json";
import subject from "../test/deletion/subject-completed.json";
import unknownLineage from "../test/deletion/unknown-lineage-completed.json";
import { cleanupPage, json, renderPage } from "../test/harness";

const load = async () => (await import("./DeletionRequestDetail")).DeletionRequestDetail;
type Fixture = { request: Record<string, unknown> & { id: string; plan: PlanItem[]; items: { verdict: unknown; model_version_id: string }[] }; timeline?: unknown[]; certificate?: unknown };

function api(f: Fixture) {
  const id = f.request.id;
  return (_r: Request, url: URL) => {
    const p = url.pathname;
    if (p.endsWith(`/deletion-requests/${id}/timeline`)) return json(f.timeline ?? []);
    if (p.endsWith(`/deletion-requests/${id}/certificate`)) return json(f.certificate, 200, { "X-Certificate-SHA256": "0".repeat(64), "X-Audit-Seq": "12" });
    if (p.endsWith(`/deletion-requests/${id}`)) return json(f.request);
    if (p.endsWith("/datasets") || p.endsWith("/models")) return json({ data: [], count: 0, next_cursor: null });
    if (p.includes("/jobs/")) return json({ detail: "not needed here", code: "not_found" }, 404);
    return undefined;
  };
}

async function open(f: Fixture) {
  await renderPage({ role: "viewer", path: `/deletion-requests/${f.request.id}`, route: "/deletion-requests/:requestId", load, handler: api(f) });
  await screen.findByTestId("items");
}

const four = (v: number | null | undefined) => (typeof v === "number" ? v.toFixed(4) : "—");
const verdictOf = (f: Fixture, n = 0) => f.request.items[n].verdict as Verdict;

/** A check row's cells, by column name. */
function rowCells(row: HTMLElement): Record<string, string> {
  const table = row.closest("table") as HTMLTableElement;
  const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent ?? "");
  const cells = [...row.querySelectorAll("td")].map((td) => td.textContent ?? "");
  return Object.fromEntries(heads.map((h, i) => [h, cells[i]]));
}

function expectCheckShown(row: HTMLElement, c: CheckRecord): void {
  const cells = rowCells(row);
  expect(cells.Check).toContain(c.check);
  expect(cells.Candidate).toContain(four(c.value));
  expect(cells.Threshold).toBe(four(c.threshold));
  expect(cells.Passed).toBe(c.passed ? "✓ passed" : "✗ failed");
  expect(cells.Original).toContain(four(c.original_value));
  expect(cells["Original passed"]).toBe(c.original_passed === null || c.original_passed === undefined ? "not measured" : c.original_passed ? "✓ passed" : "✗ failed");
  expect(cells.Informative).toBe(c.informative ? "yes" : c.kind === "utility" ? "utility check" : c.original_passed ? "no: the original passed it too" : "no: the original was not measured");
  for (const label of c.labels ?? []) expect(cells.Where).toContain(label);
}

describe("a completed subject request (ORL: the fine-tune was refused, the retrain ran)", () => {
  afterEach(cleanupPage);
  const f = subject as unknown as Fixture;
  const verdict = verdictOf(f);

  it("shows the item's level of evidence as a badge, with its sentence", async () => {
    await open(f);
    const panel = screen.getByTestId("item-evidence");
    expect(within(panel).getAllByTestId("evidence-level")[0].textContent).toBe(String(verdict.level).replace(/_/g, " "));
    expect(within(panel).getByTestId("evidence-sentence").textContent).toBe(verdict.evidence);
    // The progress table names the level too.
    expect(within(screen.getByTestId("items")).getByTestId("evidence-level").textContent).toBe("exact");
  });

  it("lists both attempts: the refused fine-tune with its checks and job, then the retrain", async () => {
    await open(f);
    const attempts = verdict.attempts as Attempt[];
    expect(attempts.map((a) => [a.method, a.passed])).toEqual([
      ["finetune", false],
      ["retrain", true],
    ]);
    const entries = screen.getAllByTestId("attempt");
    expect(entries).toHaveLength(2);
    attempts.forEach((a, n) => {
      const entry = entries[n];
      expect(entry.textContent).toContain(`Attempt ${a.attempt}: ${a.method} (${a.exact ? "exact" : "approximate"})`);
      expect(within(entry).getByRole("link", { name: `Job ${a.job_id} of attempt ${a.attempt}` }).getAttribute("href")).toBe(`/jobs/${a.job_id}`);
      expect(within(entry).getByTestId("attempt-seconds").textContent).toBe(duration(a.wall_seconds));
      expect(within(entry).getByTestId("evidence-level").textContent).toBe(String(a.level).replace(/_/g, " "));
      if (!a.passed) expect(entry.textContent).toContain(String(a.reason));
      else expect(entry.textContent).toContain(String(a.evidence));
    });
    const refused = entries[0];
    fireEvent.click(within(refused).getByText(`Checks (${attempts[0].checks?.length})`));
    const rows = within(refused).getAllByTestId("check-row");
    expect(rows).toHaveLength(attempts[0].checks?.length ?? -1);
    attempts[0].checks?.forEach((c, n) => expectCheckShown(rows[n], c));
    // The whole-class check the candidate failed and the original failed too: informative.
    const classCheck = attempts[0].checks?.find((c) => c.check === "forget_accuracy <= max_class_accuracy");
    expect(classCheck?.informative && !classCheck.passed).toBe(true);
    // Both evaluations, figure by figure.
    const evals = within(refused).getByTestId("evaluations");
    for (const key of ["UA", "TA", "loss_auc", "forget_count_trained"]) {
      const row = within(evals).getByText(key).closest("tr") as HTMLElement;
      const cells = row.querySelectorAll("td");
      expect(typeof attempts[0].evaluation?.[key]).toBe("number");
      expect(cells[0].textContent).toBe(formatValue(attempts[0].evaluation?.[key]));
      expect(cells[1].textContent).toBe(formatValue(attempts[0].original_evaluation?.[key]));
    }
  });

  it("shows the plan's estimate against the retrain, the pricing and the decision with its reason", async () => {
    await open(f);
    const [p] = f.request.plan;
    const c = p.cost!;
    const cost = screen.getByTestId("plan-cost").textContent ?? "";
    expect(cost).toContain(`${c.method} ${c.estimate_fraction.toFixed(2)}× a retrain (${c.estimated_passes} of ${c.retrain_passes} sample passes)`);
    expect(cost).toContain(`p_fail ${c.p_fail.toFixed(2)} (${c.failures} of ${c.verdicts} past verdicts on this ${c.history})`);
    expect(cost).toContain(`expected ${c.expected_fraction.toFixed(2)}× a retrain`);
    expect(cost).toContain(`limit ${c.max_cost_fraction}× (max_cost_fraction)`);
    const row = screen.getByTestId("plan-cost").closest("tr") as HTMLElement;
    expect(row.textContent).toContain(`${duration(p.estimated_seconds)} vs retrain ${duration(p.retrain_seconds)}`);
    const decision = screen.getByTestId("plan-decision");
    expect(decision.textContent).toContain(c.choice === "attempt" ? "attempt" : "exact path");
    expect(decision.textContent).toContain(c.reason);
    expect(p.shadows).toBeNull();
    expect(within(row).queryByTestId("plan-shadows")).toBeNull();
  });

  it("states the outcome the API recorded", async () => {
    await open(f);
    const outcome = await screen.findByTestId("outcome");
    expect(outcome.textContent).toContain("Outcome: erased");
    expect(outcome.textContent).not.toContain("where known");
  });
});

describe("a retired version (fine-tuned from an affected one): no run, so no verdict", () => {
  afterEach(cleanupPage);

  it("shows the level and sentence the certificate states for it", async () => {
    const base = subject as unknown as Fixture & { certificate: { models: Record<string, unknown>[] } };
    const retired = "mv_01a2429e00descendant0000001";
    // core.deletion.policy.exact_evidence("retire"), as certificate._evidence states it.
    const sentence = "retired: the version was withdrawn and its checkpoint purged; nothing derived from it remains in use";
    const f = {
      ...base,
      request: { ...base.request, items: [...base.request.items, { ...base.request.items[0], id: "dri_retired", model_version_id: retired, method: "retire", exact: true, job_id: null, result_version_id: null, verdict: null, attempt: 0 }] },
      certificate: { ...base.certificate, models: [...base.certificate.models, { ...base.certificate.models[0], old_version_id: retired, method: "retire", action: "retired", evidence_level: "exact", evidence: sentence, checks: [], attempts: [] }] },
    };
    await open(f);
    const panel = await screen.findByRole("article", { name: `Evidence for version ${retired}` });
    expect(within(panel).getByTestId("evidence-level").textContent).toBe("exact");
    expect(within(panel).getByTestId("evidence-sentence").textContent).toBe(sentence);
    expect(within(panel).queryByTestId("attempt")).toBeNull();
    expect(screen.getAllByTestId("item-evidence")).toHaveLength(2);
  });
});

describe("a completed request with a version of unknown lineage", () => {
  afterEach(cleanupPage);
  const f = unknownLineage as unknown as Fixture & { certificate: { unknown_lineage: { version_id: string; model_id: string; note: string }[] } };

  it("explains erased_where_known and names each unchanged version with its note", async () => {
    await open(f);
    const outcome = await screen.findByTestId("outcome");
    expect(outcome.textContent).toContain("Outcome: erased where known");
    expect(outcome.textContent).toContain("erased_where_known");
    expect(outcome.textContent).toMatch(/were not changed: nobody can tell whether they were trained on the data/);
    const [u] = f.certificate.unknown_lineage;
    const list = within(outcome).getByRole("list", { name: "Versions of unknown lineage" });
    expect(within(list).getAllByRole("link").map((a) => a.getAttribute("href"))).toEqual([`/versions/${u.version_id}`, `/models/${u.model_id}`]);
    expect(list.textContent).toContain(u.note);
    // The blast radius names it too, with the API's note.
    const br = f.request.blast_radius as { unverifiable_note: string };
    expect(screen.getByTestId("unknown-lineage").textContent).toContain(br.unverifiable_note);
  });
});

describe("a request whose model asks for the strong test (LiRA shadow models)", () => {
  afterEach(cleanupPage);
  const f = liraVerifying as unknown as Fixture;

  it("shows the shadows' one-off cost in the plan and in the total", async () => {
    await open(f);
    const [p] = f.request.plan;
    const shadows = screen.getByTestId("plan-shadows").textContent ?? "";
    expect(shadows).toContain(`trains ${p.shadows!.k} shadow models once: ${duration(p.shadows!.one_off_seconds)}`);
    expect(screen.getByTestId("plan-total").textContent).toContain(`of which ${duration(p.shadows!.one_off_seconds)} one-off shadow training`);
    expect(screen.getByTestId("plan-cost").textContent).toContain("no cost limit");
  });

  it("says why a passing candidate is not certified: no check was informative", async () => {
    await open(f);
    const verdict = verdictOf(f);
    expect(verdict.level).toBe("not_certified");
    const panel = screen.getByTestId("item-evidence");
    expect(within(panel).getAllByTestId("evidence-level")[0].textContent).toBe("not certified");
    expect(panel.textContent).toContain(String(verdict.reason));
    const table = within(panel).getAllByTestId("checks")[0];
    const rows = within(table).getAllByTestId("check-row");
    expect(rows).toHaveLength(verdict.checks?.length ?? -1);
    verdict.checks?.forEach((c, n) => expectCheckShown(rows[n], c));
    const lira = rows[verdict.checks!.findIndex((c) => c.reference)];
    expect(lira.textContent).toContain("against shadow reference models");
  });
});

describe("a verdict the strong test backs, on a version whose shadows exist", () => {
  afterEach(cleanupPage);
  const { verdict, shadows } = liraVerified as unknown as { verdict: Verdict; shadows: NonNullable<PlanItem["shadows"]> };
  const base = liraVerifying as unknown as Fixture;
  const f: Fixture = {
    request: {
      ...base.request,
      plan: [{ ...base.request.plan[0], shadows }],
      items: [{ ...base.request.items[0], verdict, state: "done" } as Fixture["request"]["items"][number]],
    },
  };

  it("names the level verified_against_reference, and the bank the plan reuses", async () => {
    await open(f);
    const panel = screen.getByTestId("item-evidence");
    expect(within(panel).getAllByTestId("evidence-level")[0].textContent).toBe("verified against reference");
    expect(within(panel).getByTestId("evidence-sentence").textContent).toBe(verdict.evidence);
    const informative = (verdict.checks ?? []).filter((c) => c.informative);
    expect(informative.some((c) => c.reference)).toBe(true);
    const yes = within(within(panel).getAllByTestId("checks")[0])
      .getAllByTestId("check-row")
      .filter((r) => rowCells(r).Informative === "yes");
    expect(yes).toHaveLength(informative.length);
    const cell = screen.getByTestId("plan-shadows");
    expect(cell.textContent).toContain(`reuses ${shadows.k} shadow models`);
    expect(cell.textContent).toContain(`paid ${duration(shadows.paid_seconds)} once; ${shadows.runs_served} run(s) served`);
    expect(within(cell).getByRole("link").getAttribute("href")).toBe(`/versions/${shadows.from_version_id}`);
    expect(screen.getByTestId("plan-total").textContent).not.toContain("shadow training");
  });
});
