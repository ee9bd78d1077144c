import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import type { Lineage, ModelVersion } from "../api/types";
import { LineageGraph, lineageLayout } from "./LineageGraph";

const version = (n: number, status = "active"): ModelVersion => ({
  id: `mv_${n}`,
  model_id: "mdl_1",
  version: n,
  status,
  source: n === 1 ? "upload" : "train",
  sha256: "ab".repeat(32),
  size_bytes: 10,
  config: {},
  metrics: {},
  parent_version_id: n > 1 ? `mv_${n - 1}` : null,
  job_id: n > 1 ? `job_${n}` : null,
  dataset_version_id: "dsv_1",
  created_at: "2026-01-01T00:00:00Z",
  created_by: null,
});

const lineage: Lineage = {
  version: version(3),
  ancestors: [version(2), version(1, "retired")],
  children: [version(4), version(5, "tainted")],
  job: { id: "job_3", kind: "train", state: "succeeded", method: null },
  training_set: { dataset_id: "ds_1", dataset_version: 2, dataset_version_id: "dsv_2", content_hash: "h", split: "train", count: 1234, excluded_sample_ids: [] },
};

describe("LineageGraph", () => {
  it("lays out ancestors → job (fed by the training set) → version → children", () => {
    const { nodes, edges } = lineageLayout(lineage, "mnist");
    const col = Object.fromEntries(nodes.map((n) => [n.key, n.col]));
    expect([col.mv_1, col.mv_2, col.job_3, col.mv_3, col.mv_4, col.mv_5]).toEqual([0, 1, 2, 3, 4, 4]);
    expect(edges).toEqual(
      expect.arrayContaining([
        { from: "mv_1", to: "mv_2" },
        { from: "mv_2", to: "job_3" },
        { from: "training-set", to: "job_3" },
        { from: "job_3", to: "mv_3" },
        { from: "mv_3", to: "mv_5" },
      ]),
    );
  });

  it("links every other node and marks statuses", () => {
    const { container } = render(<LineageGraph lineage={lineage} datasetName="mnist" />);
    expect(screen.getByRole("link", { name: /Training set: mnist version 2, 1234 train samples/ }).getAttribute("href")).toBe("#/datasets/ds_1?version=2");
    expect(screen.getByRole("link", { name: /train job job_3/ }).getAttribute("href")).toBe("#/jobs/job_3");
    expect(container.querySelectorAll(".status-tainted")).toHaveLength(1);
    expect(container.querySelectorAll(".status-retired")).toHaveLength(1);
    expect(container.querySelectorAll(".node-current")).toHaveLength(1);
  });
});
