import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { JudgeCells, judgeCells } from "./JudgeCells";

const cell = (judge: string, sampler: string, forget: number, retain: number) => ({
  judge,
  sampler,
  forget_rate: forget,
  forget_ci: [0, 0.194],
  forget_count: 16,
  retain_accuracy: retain,
  retain_ci: [retain - 0.05, retain + 0.04],
  retain_count: 144,
});

const evaluation = {
  forget_rate: 0,
  cells: [
    cell("digit-recognizer", "ddim 25 steps, seed 0", 0, 0.809),
    cell("mlp@test split", "ddim 25 steps, seed 0", 0.0625, 0.611),
    cell("digit-recognizer", "ddim 50 steps, seed 1", 0, 0.8),
    cell("mlp@test split", "ddim 50 steps, seed 1", 0, 0.65),
  ],
  disagreement: { between_judges: { forget_rate: 0.0625, retain_accuracy: 0.198 }, between_samplers: { forget_rate: 0.0625, retain_accuracy: 0.039 } },
};

describe("the judges' cells of a diffusion evaluation", () => {
  it("lists every judge at every sampler setting with intervals and the disagreement", () => {
    render(<JudgeCells evaluation={evaluation} original={{ cells: [cell("mlp@test split", "ddim 25 steps, seed 0", 1, 0.9)] }} />);
    const rows = screen.getAllByRole("row").slice(1);
    expect(rows).toHaveLength(4);
    expect(rows[1].textContent).toContain("mlp@test split");
    expect(rows[1].textContent).toContain("6.3 %");
    expect(rows[1].textContent).toContain("61.1 %");
    expect(rows[1].textContent).toContain("90.0 %"); // the original's same cell
    expect(rows[0].textContent).toContain("0.0 %–19.4 %");
    expect(rows[0].textContent).toContain("—"); // the original lacks that cell
    expect(screen.getByText(/Largest disagreement between judges/).textContent).toContain("retained accuracy 19.8 %");
  });

  it("renders nothing for an evaluation without cells", () => {
    expect(judgeCells({ forget_rate: 0.1 })).toBeNull();
    expect(judgeCells(null)).toBeNull();
    const { container } = render(<JudgeCells evaluation={{ UA: 1 }} />);
    expect(container.textContent).toBe("");
  });
});
