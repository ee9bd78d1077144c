import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { generationKey } from "../api/generations";
import { DDPM_MODEL, fakeGeneration, ORIGINAL, png, UNLEARNED } from "../test/fixtures";
import { cleanupPage, json, renderPage, type Handler } from "../test/harness";

const loadList = async () => (await import("./Generations")).Generations;
const loadDetail = async () => (await import("./Generations")).GenerationDetail;
const loadCompare = async () => (await import("./GenerationCompare")).GenerationCompare;
const page = (data: unknown[], next: string | null = null) => json({ data, count: data.length, next_cursor: next });

/** Models, versions, artifacts and the given generate jobs (newest first). */
function fakeApi(jobs: ReturnType<typeof fakeGeneration>[], posted: unknown[] = []): Handler {
  return async (r, url) => {
    const p = url.pathname;
    if (p.endsWith("/api/v1/models")) return page([DDPM_MODEL]);
    if (p.endsWith(`/models/${DDPM_MODEL.id}/versions`)) return page([ORIGINAL, UNLEARNED]);
    for (const v of [ORIGINAL, UNLEARNED]) if (p.endsWith(`/model-versions/${v.id}`)) return json(v);
    if (p.includes("/artifacts/")) return png();
    if (p.endsWith("/events")) return new Response("", { headers: { "content-type": "text/event-stream" } });
    if (p.endsWith("/logs")) return page([]);
    if (p.endsWith("/metrics")) return json({ series: {} });
    const one = jobs.find((j) => p.endsWith(`/jobs/${j.id}`));
    if (one) return json(one);
    if (p.endsWith("/api/v1/jobs") && r.method === "POST") {
      const body = (await r.json()) as { model_version_id: string; params: Record<string, unknown> };
      posted.push(body);
      const job = fakeGeneration({ id: `job_new${posted.length}`, model_version_id: body.model_version_id, params: body.params });
      jobs.unshift(job);
      return json(job, 201);
    }
    if (p.endsWith("/api/v1/jobs")) return page(jobs.filter((j) => url.searchParams.get("kind") === "generate" && j.kind === "generate"));
    return undefined;
  };
}

describe("generations", () => {
  afterEach(cleanupPage);

  it("lists generate jobs with their grids, paginated", async () => {
    let release: (r: Response) => void = () => undefined;
    const api = fakeApi([]);
    const { seen } = await renderPage({
      role: "engineer",
      path: "/generations",
      route: "/generations",
      load: loadList,
      handler: (r, url) =>
        url.pathname.endsWith("/api/v1/jobs")
          ? new Promise((resolve) => {
              release = resolve;
            })
          : api(r, url),
    });
    expect((await screen.findByRole("status")).textContent).toContain("Loading generations");
    release(page([fakeGeneration(), fakeGeneration({ id: "job_gen2", state: "running", progress: 0.5, artifacts: [] })], "job_gen2"));
    const list = await screen.findByRole("list", { name: "Generations" });
    expect(within(list).getAllByRole("listitem")).toHaveLength(2);
    expect(await within(list).findByRole("img", { name: "Image grid of generation job_gen1" })).toBeTruthy();
    expect(within(list).getByLabelText("Progress of job_gen2")).toBeTruthy();
    expect(within(list).getAllByText(/3 images · ddim 50 steps · guidance 3 · seed 0/)).toHaveLength(2);
    expect(screen.getByRole("button", { name: "Next →" })).toBeTruthy();
    expect(screen.getByRole("link", { name: "Generate images" }).getAttribute("href")).toBe("/jobs/new?kind=generate");
    const listed = seen.find((r) => new URL(r.url).pathname.endsWith("/api/v1/jobs"))!;
    expect(new URL(listed.url).searchParams.get("kind")).toBe("generate");
    // The grid came through the typed client with the key.
    const grid = seen.find((r) => r.url.includes("/jobs/job_gen1/artifacts/grid.png"))!;
    expect(grid.headers.get("Authorization")).toBe("Bearer exp_test_key");
  });

  it("says when there is nothing yet, and a viewer is not offered generating", async () => {
    await renderPage({ role: "viewer", path: "/generations", route: "/generations", load: loadList, handler: fakeApi([]) });
    expect(await screen.findByText(/No generate jobs yet/)).toBeTruthy();
    expect(screen.queryByRole("link", { name: "Generate images" })).toBeNull();
  });

  it("shows the API's error instead of a blank page", async () => {
    await renderPage({
      role: "viewer",
      path: "/generations",
      route: "/generations",
      load: loadList,
      handler: () => json({ detail: "the database is unavailable; retry shortly", code: "unavailable" }, 503),
    });
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("Could not load generations (HTTP 503, unavailable)");
  });

  it("shows one generation's grid and every image with its label and seed", async () => {
    await renderPage({ role: "viewer", path: "/generations/job_gen1", route: "/generations/:jobId", load: loadDetail, handler: fakeApi([fakeGeneration({ params: { labels: [4, 7], seed: 10 } })]) });
    const images = await screen.findByRole("list", { name: "Generated images" });
    const items = within(images).getAllByRole("listitem");
    expect(items.map((li) => li.textContent?.replace("Download", "").trim())).toEqual(["label 4 · seed 10", "label 7 · seed 11"]);
    expect(await screen.findByRole("img", { name: "label 7, seed 11" })).toBeTruthy();
    expect(screen.getByRole("button", { name: "Download grid" })).toBeTruthy();
    expect(screen.getByRole("button", { name: "Download manifest" })).toBeTruthy();
  });

  it("treats the same request the same way however its seeds were written", () => {
    const stored = { labels: [0, 1], seeds: null, seed: 5, guidance_scale: 3, num_inference_steps: 50, scheduler: "ddim", batch_size: 64, device: "cpu" };
    const defaults = { seed: 0, guidance_scale: 3, num_inference_steps: 50, scheduler: "ddim", batch_size: 64, device: "cpu" };
    expect(generationKey({ labels: [0, 1], seeds: [5, 6] }, defaults)).toBe(generationKey(stored, defaults));
    expect(generationKey({ labels: [0, 1], seed: 5, batch_size: 2, device: "cuda" }, defaults)).toBe(generationKey(stored, defaults));
    expect(generationKey({ labels: [0, 1], seed: 6 }, defaults)).not.toBe(generationKey(stored, defaults));
    expect(generationKey({ labels: [0, 1], seed: 5, scheduler: "dpm" }, defaults)).not.toBe(generationKey(stored, defaults));
  });

  it("before/after: reuses an identical earlier generation and submits only the missing one", async () => {
    const earlier = fakeGeneration({ id: "job_before", model_version_id: ORIGINAL.id, params: { labels: [0, 1, 2], seed: 0 } });
    const other = fakeGeneration({ id: "job_other", model_version_id: UNLEARNED.id, params: { labels: [0, 1, 2], seed: 1 } });
    const posted: unknown[] = [];
    await renderPage({ role: "engineer", path: `/generations/compare?a=${ORIGINAL.id}`, route: "/generations/compare", load: loadCompare, handler: fakeApi([other, earlier], posted) });
    // The unlearned child becomes the "after" version by itself.
    await waitFor(() => expect((screen.getByLabelText("After (version)") as HTMLSelectElement).value).toBe(UNLEARNED.id));
    await screen.findByRole("form", { name: "Generation settings" });
    const form = () => screen.getByRole("form", { name: "Generation settings" });
    await waitFor(() => expect((within(form()).getByLabelText("Labels *") as HTMLInputElement).value).toBe("0, 1, 2, 3, 4, 5, 6, 7, 8, 9"));
    expect(within(form()).queryByLabelText("Device")).toBeNull();
    fireEvent.change(within(form()).getByLabelText("Labels *"), { target: { value: "0, 1, 2" } });
    fireEvent.click(await within(form()).findByRole("button", { name: "Generate on both (or reuse)" }));
    const before = await screen.findByTestId("side-a");
    expect(await within(before).findByText(/reused an earlier generation/)).toBeTruthy();
    expect(within(before).getByRole("link", { name: /generation/ }).getAttribute("href")).toBe("/generations/job_before");
    const after = screen.getByTestId("side-b");
    expect(await within(after).findByText(/generating now/)).toBeTruthy();
    expect(posted).toEqual([{ kind: "generate", model_version_id: UNLEARNED.id, params: { labels: [0, 1, 2], seed: 0, guidance_scale: 3, num_inference_steps: 50, scheduler: "ddim", batch_size: 64, device: "cpu" } }]);
    expect(await within(after).findByRole("img", { name: "After: image grid of generation job_new1" })).toBeTruthy();
    expect(await screen.findByText(/Same request on both/)).toBeTruthy();
  });

  it("before/after for a viewer only looks for earlier generations", async () => {
    const posted: unknown[] = [];
    await renderPage({ role: "viewer", path: `/generations/compare?a=${ORIGINAL.id}&b=${UNLEARNED.id}`, route: "/generations/compare", load: loadCompare, handler: fakeApi([], posted) });
    fireEvent.click(await screen.findByRole("button", { name: "Find earlier generations" }));
    expect(await screen.findByText(/an engineer or admin can run one/)).toBeTruthy();
    expect(posted).toEqual([]);
  });
});
