/**
 * The evidence panel against a real ddpm verdict: ddpm-class-verdict.json was produced by
 * core.deletion.policy.verify (family "ddpm") over two panels of erasure cells built with
 * workers.engine.diffusion.judge.erasure_cell / disagreement, each recorded by
 * core.deletion.flows._keep_attempt (a failed esd run, then a retried one that passed).
 * Every assertion is computed from the fixture: a field the page drops fails a test.
 */
import { fireEvent, render, screen, within } from "@testing-library/react";
import type { ReactNode } from "react";
import { MemoryRouter } from "react-router";
import { describe, expect, it } from "vitest";

import type { Verdict } from "../api/types";
import ddpm from "../test/deletion/ddpm-class-verdict.json";
import { asVerdict, ChecksTable, figures, ItemEvidence } from "./Evidence";

const verdict = asVerdict(ddpm) as Verdict;
const wrap = (node: ReactNode) => render(<MemoryRouter>{node}</MemoryRouter>);
const four = (v: number | null | undefined) => (typeof v === "number" ? v.toFixed(4) : "—");

describe("a verdict's evidence", () => {
  it("shows the level as a badge and the verdict's own sentence", () => {
    wrap(<ItemEvidence verdict={verdict} versionId="mv_ddpm" />);
    expect(verdict.level).toBe("not_distinguishable");
    const panel = screen.getByTestId("item-evidence");
    expect(within(panel).getAllByTestId("evidence-level")[0].textContent).toBe("not distinguishable");
    expect(screen.getByTestId("evidence-sentence").textContent).toBe(verdict.evidence);
  });

  it("has one row per (judge, sampler setting) check, candidate beside the original", () => {
    wrap(<ItemEvidence verdict={verdict} versionId="mv_ddpm" />);
    const checks = verdict.checks ?? [];
    const table = screen.getAllByTestId("checks")[0];
    const rows = within(table).getAllByTestId("check-row");
    expect(rows).toHaveLength(checks.length);
    expect(new Set(checks.map((c) => `${c.judge}|${c.sampler}`)).size).toBe(4);
    checks.forEach((c, n) => {
      const cells = within(rows[n]).getAllByRole("cell").map((td) => td.textContent ?? "");
      const [name, where, value, threshold, passed, original, originalPassed, informative] = cells;
      expect(name).toContain(c.check);
      expect(name).toContain(c.attack ?? "");
      expect(where).toContain(`judge ${c.judge}`);
      expect(where).toContain(`sampler setting ${c.sampler}`);
      expect(value).toContain(four(c.value));
      expect(value).toContain(`95 % CI ${four(c.ci?.[0])}–${four(c.ci?.[1])}`);
      expect(threshold).toBe(four(c.threshold));
      expect(passed).toBe(c.passed ? "✓ passed" : "✗ failed");
      expect(original).toContain(four(c.original_value));
      expect(originalPassed).toBe(c.original_passed ? "✓ passed" : "✗ failed");
      expect(informative).toBe(c.informative ? "yes" : c.kind === "utility" ? "utility check" : "no: the original passed it too");
    });
  });

  it("reports how far the judges and sampler settings disagree", () => {
    wrap(<ItemEvidence verdict={verdict} versionId="mv_ddpm" />);
    const text = screen.getByTestId("disagreement").textContent ?? "";
    for (const judge of verdict.judges ?? []) expect(text).toContain(judge);
    for (const sampler of verdict.samplers ?? []) expect(text).toContain(String(sampler));
    const between = (verdict.disagreement as { between_judges: { forget_rate: number } }).between_judges;
    expect(text).toContain(`between judges, forget rate ${between.forget_rate}`);
  });

  it("lists every attempt, the failed one too, with its job, seconds and checks", () => {
    wrap(<ItemEvidence verdict={verdict} versionId="mv_ddpm" />);
    const attempts = verdict.attempts ?? [];
    expect(attempts.map((a) => a.passed)).toEqual([false, true]);
    const entries = screen.getAllByTestId("attempt");
    expect(entries).toHaveLength(attempts.length);
    attempts.forEach((a, n) => {
      const entry = entries[n];
      const text = entry.textContent ?? "";
      expect(text).toContain(`Attempt ${a.attempt}`);
      expect(text).toContain(a.method);
      expect(text).toContain(a.passed ? "passed" : "not passed");
      expect(within(entry).getByTestId("attempt-seconds").textContent).toBe(`${a.wall_seconds?.toFixed(1)} s`);
      expect(within(entry).getByRole("link").getAttribute("href")).toBe(`/jobs/${a.job_id}`);
      expect(within(entry).getByTestId("evidence-level").textContent).toBe(String(a.level).replace(/_/g, " "));
      if (!a.passed) expect(text).toContain(String(a.reason));
      else expect(text).toContain(String(a.evidence));
      // Collapsed by default; its checks are there when opened.
      const details = within(entry).getByText(`Checks (${a.checks?.length})`).closest("details") as HTMLDetailsElement;
      expect(details.open).toBe(false);
      fireEvent.click(within(entry).getByText(`Checks (${a.checks?.length})`));
      expect(within(details).getAllByTestId("check-row")).toHaveLength(a.checks?.length ?? -1);
    });
    // The failed attempt's failing cell is named with its judge and setting.
    const failing = attempts[0].checks?.find((c) => !c.passed);
    expect(failing).toBeTruthy();
    const failedRows = within(entries[0]).getAllByTestId("check-row").filter((r) => /✗ failed/.test(within(r).getAllByRole("cell")[4].textContent ?? ""));
    expect(failedRows).toHaveLength(attempts[0].checks?.filter((c) => !c.passed).length ?? -1);
    expect(failedRows[0].textContent).toContain(`judge ${failing?.judge}`);
  });

  it("shows both evaluations of an attempt, figure by figure, and the judge cells", () => {
    wrap(<ItemEvidence verdict={verdict} versionId="mv_ddpm" />);
    const a = (verdict.attempts ?? [])[1];
    const entry = screen.getAllByTestId("attempt")[1];
    const table = within(entry).getByTestId("evaluations");
    const mine = figures(a.evaluation);
    const theirs = figures(a.original_evaluation);
    expect(mine.get("worst.forget_rate")).toBe(0);
    for (const key of ["forget_rate", "retain_accuracy", "worst.retain_accuracy", "disagreement.between_judges"]) {
      if (!mine.has(key) && !theirs.has(key)) continue;
      expect(within(table).getByText(key)).toBeTruthy();
    }
    expect(within(entry).getByText(/Every judge at every sampler setting/)).toBeTruthy();
  });

  it("says why a check is not informative, and marks the strong test's reference", () => {
    const base = { kind: "forgetting", attack: "LiRA", value: 0.01, threshold: 0.05, passed: true, original_value: 0.02, original_threshold: 0.05 };
    wrap(
      <ChecksTable
        caption="c"
        checks={[
          { ...base, check: "lira_membership_test", original_passed: true, informative: false, reference: true },
          { ...base, check: "loss_auc <= max_loss_auc", original_passed: null, informative: false },
        ]}
      />,
    );
    const rows = screen.getAllByTestId("check-row");
    expect(rows[0].textContent).toContain("no: the original passed it too");
    expect(rows[0].textContent).toContain("against shadow reference models");
    expect(rows[1].textContent).toContain("no: the original was not measured");
    expect(rows[1].textContent).toContain("not measured");
    // No judge or labels on any record: no "Where" column.
    expect(screen.queryByRole("columnheader", { name: "Where" })).toBeNull();
  });
});
