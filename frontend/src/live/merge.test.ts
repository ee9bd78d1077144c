import { describe, expect, it } from "vitest";

import { chartGroups, mergeEvents, mergeSeries } from "./merge";

const at = "2026-01-01T00:00:00Z";

describe("folding live events into REST data", () => {
  it("merges log/state events by id without duplicates", () => {
    const rest = [1, 2, 3].map((id) => ({ id, type: "log", data: { message: `m${id}` }, created_at: at }));
    const live = [3, 4].map((id) => ({ id, type: "log", data: { message: `m${id}` }, created_at: at }));
    expect(mergeEvents(rest, live).map((e) => e.id)).toEqual([1, 2, 3, 4]);
  });

  it("merges metric points by step and value, in step order", () => {
    const merged = mergeSeries(
      { train_loss: [{ step: 10, value: 0.9, at }] },
      { train_loss: [{ step: 20, value: 0.5, at }, { step: 10, value: 0.9, at }], test_loss: [{ step: 10, value: 1, at }] },
    );
    expect(merged.train_loss.map((p) => p.step)).toEqual([10, 20]);
    expect(merged.test_loss).toHaveLength(1);
  });

  it("groups losses and accuracies into one chart each, skipping step-less metrics", () => {
    const groups = chartGroups({
      train_loss: [{ step: 1, value: 1, at }, { step: 2, value: 0.5, at }],
      test_loss: [{ step: 2, value: 0.7, at }],
      train_accuracy: [{ step: 2, value: 0.8, at }],
      lr: [{ step: 2, value: 0.1, at }],
      test_accuracy_eval: [{ step: null, value: 0.9, at }],
    });
    expect(groups.map((g) => g.title)).toEqual(["Loss", "Accuracy", "Learning rate"]);
    expect(groups[0].names).toEqual(["test_loss", "train_loss"]);
    expect(groups[0].rows).toEqual([{ step: 1, train_loss: 1 }, { step: 2, train_loss: 0.5, test_loss: 0.7 }]);
  });
});
