import { screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { CNN_MODEL, DDPM_MODEL, fakeGeneration, fakeVersion, png, UNLEARNED } from "../test/fixtures";
import { cleanupPage, json, renderPage, type Handler } from "../test/harness";

const load = async () => (await import("./VersionDetail")).VersionDetail;

function fakeApi(generations: unknown[], version = UNLEARNED, model: object = DDPM_MODEL): Handler {
  return (_r, url) => {
    const p = url.pathname;
    if (p.endsWith(`/model-versions/${version.id}`)) return json(version);
    if (p.endsWith(`/models/${version.model_id}`)) return json(model);
    if (p.includes("/artifacts/")) return png();
    if (p.endsWith("/api/v1/jobs")) return json({ data: generations, count: generations.length, next_cursor: null });
    return undefined;
  };
}

describe("a version's page", () => {
  afterEach(cleanupPage);

  it("offers generating from a diffusion version and shows its latest grid", async () => {
    const mine = fakeGeneration({ id: "job_mine", model_version_id: UNLEARNED.id });
    const { seen } = await renderPage({ role: "engineer", path: `/versions/${UNLEARNED.id}`, route: "/versions/:versionId", load, handler: fakeApi([fakeGeneration({ id: "job_parent" }), mine]) });
    const generate = await screen.findByRole("link", { name: "Generate" });
    expect(generate.getAttribute("href")).toBe(`/jobs/new?kind=generate&model_version_id=${UNLEARNED.id}`);
    expect(screen.getByRole("link", { name: "Unlearn" })).toBeTruthy();
    const latest = await screen.findByTestId("latest-grid");
    // The newest generation of this version, not of its parent.
    expect(await within(latest).findByRole("img", { name: "Image grid of generation job_mine" })).toBeTruthy();
    expect(screen.getByRole("link", { name: /Before \/ after against its parent/ }).getAttribute("href")).toBe(`/generations/compare?a=${UNLEARNED.parent_version_id}&b=${UNLEARNED.id}`);
    const listed = new URL(seen.find((r) => new URL(r.url).pathname.endsWith("/api/v1/jobs"))!.url);
    expect(Object.fromEntries(listed.searchParams)).toMatchObject({ kind: "generate", model_id: DDPM_MODEL.id, state: "succeeded" });
  });

  it("says when a diffusion version has not generated yet, and a viewer gets no buttons", async () => {
    await renderPage({ role: "viewer", path: `/versions/${UNLEARNED.id}`, route: "/versions/:versionId", load, handler: fakeApi([fakeGeneration({ id: "job_parent" })]) });
    expect(await screen.findByText("No generation of this version yet.")).toBeTruthy();
    expect(screen.getByRole("heading", { name: "tiny-ddpm v2" })).toBeTruthy();
    expect(screen.queryByRole("link", { name: "Generate" })).toBeNull();
    expect(screen.queryByRole("link", { name: "Unlearn" })).toBeNull();
  });

  it("has no generation section for a classifier", async () => {
    const cnn = fakeVersion({ id: "mv_cnn", model_id: CNN_MODEL.id });
    await renderPage({ role: "admin", path: "/versions/mv_cnn", route: "/versions/:versionId", load, handler: fakeApi([], cnn, CNN_MODEL) });
    // Once the model (and so its family) is known:
    expect(await screen.findByRole("heading", { name: "mnist-cnn v1" })).toBeTruthy();
    expect(screen.getByRole("link", { name: "Unlearn" })).toBeTruthy();
    expect(screen.queryByRole("link", { name: "Generate" })).toBeNull();
    expect(screen.queryByText("Latest generation")).toBeNull();
  });
});
