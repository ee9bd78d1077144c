// End-to-end run of the dashboard in Debian's headless Chromium against a real server.
//   EXPUNGE_URL=http://127.0.0.1:8123 EXPUNGE_KEY=exp_... node e2e/run.mjs
// Saves a screenshot of each page under test-output/screenshots/ (or SCREENSHOT_DIR)
// and exits non-zero on the first failed step. No browser is downloaded.
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.EXPUNGE_URL ?? "http://127.0.0.1:8000").replace(/\/$/, "");
const KEY = process.env.EXPUNGE_KEY;
const SHOTS = resolve(process.env.SCREENSHOT_DIR ?? resolve(here, "../../test-output/screenshots"));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const JOB_TIMEOUT = Number(process.env.E2E_JOB_TIMEOUT_MS ?? 240_000);
if (!KEY) {
  console.error("EXPUNGE_KEY is required");
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
const steps = [];
const pageErrors = [];
// What the pages showed that the pytest wrapper asserts on too (tests/frontend/test_e2e.py).
const shown = {};

function log(msg) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}`);
}

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function step(name, fn) {
  const t = Date.now();
  log(`▶ ${name}`);
  await fn();
  steps.push({ name, ms: Date.now() - t });
}

async function shot(page, name) {
  // Let charts and images settle; then a full-page capture.
  await page.waitForLoadState("networkidle", { timeout: 5_000 }).catch(() => {});
  await page.screenshot({ path: resolve(SHOTS, `${name}.png`), fullPage: true });
  log(`  screenshot ${name}.png`);
}

async function go(page, hash) {
  await page.goto(`${BASE}/#${hash}`);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
// Generous: the machine may be training the demo job on the same cores meanwhile.
page.setDefaultTimeout(60_000);
page.on("pageerror", (err) => {
  pageErrors.push(String(err));
  log(`  page error: ${err.stack ?? err}`);
});

let failed = null;
try {
  await step("sign in (a wrong key first: the API's message is shown)", async () => {
    await go(page, "/");
    await page.getByLabel("API key").fill("exp_wrong000000_" + "x".repeat(43));
    await page.getByRole("button", { name: "Sign in" }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    const text = await alert.innerText();
    check(/401/.test(text) && text.length > 20, `sign-in error shows the API message: ${text}`);
    await shot(page, "01-sign-in-error");
    await page.getByLabel("API key").fill(KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Signed in as").waitFor();
    check(await page.locator(".topbar .badge").innerText() === "admin", "header shows the admin role");
  });

  await step("overview: health and jobs", async () => {
    await page.getByRole("heading", { name: "Service health" }).waitFor();
    await page.locator(".check.ok").nth(2).waitFor();
    check((await page.locator(".check.ok").count()) === 3, "database, queue and storage are OK");
    await page.getByRole("heading", { name: "Recent jobs" }).waitFor();
    await page.locator("table").last().waitFor();
    await shot(page, "02-overview");
  });

  await step("datasets list", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Datasets" }).click();
    await page.getByRole("link", { name: "mnist", exact: true }).waitFor();
    await page.getByRole("link", { name: "orl-faces" }).waitFor();
    await shot(page, "03-datasets");
  });

  await step("dataset detail: thumbnails load through the key, label filter", async () => {
    await page.getByRole("link", { name: "mnist", exact: true }).click();
    await page.getByRole("heading", { name: "Samples" }).waitFor();
    await page.waitForFunction(() => {
      const imgs = [...document.querySelectorAll("img.thumb")];
      return imgs.length >= 24 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    });
    await shot(page, "04-dataset-mnist");
    await page.getByRole("search", { name: "Filter samples" }).getByLabel("Label").selectOption("7");
    await page.waitForFunction(() => {
      const labels = [...document.querySelectorAll(".sample-label")].map((e) => e.textContent);
      return labels.length > 0 && labels.every((l) => l && l.includes("7"));
    });
    await page.waitForFunction(() => [...document.querySelectorAll("img.thumb")].length > 0);
  });

  await step("dataset detail: ORL faces filtered by subject", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Datasets" }).click();
    await page.getByRole("link", { name: "orl-faces" }).click();
    await page.getByRole("heading", { name: "Samples" }).waitFor();
    await page.locator(".sample-meta button").first().waitFor();
    const subject = (await page.locator(".sample-meta button").first().innerText()).trim();
    await page.getByRole("search", { name: "Filter samples" }).getByLabel("Subject id").fill(subject);
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForFunction(
      (s) => {
        const subs = [...document.querySelectorAll(".sample-meta button")].map((e) => e.textContent);
        const imgs = [...document.querySelectorAll("img.thumb")];
        return subs.length > 0 && subs.every((x) => x === s) && imgs.length === subs.length && imgs.every((i) => i.complete && i.naturalWidth > 0);
      },
      subject,
    );
    await shot(page, "05-dataset-orl-subject");
  });

  await step("models list and model detail", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Models" }).click();
    await page.getByRole("link", { name: "demo-mnist-cnn" }).first().waitFor();
    await shot(page, "06-models");
    await page.getByRole("link", { name: "demo-mnist-cnn" }).first().click();
    await page.getByRole("heading", { name: "Versions" }).waitFor();
    await page.getByRole("heading", { name: "Architecture" }).waitFor();
    await page.locator("table, .empty").last().waitFor();
    await shot(page, "07-model-detail");
  });

  let jobUrl = "";
  await step("submit a training job from the schema-driven form", async () => {
    await page.getByRole("link", { name: "Train", exact: true }).click();
    const form = page.getByRole("form", { name: "Submit a train job" });
    await form.waitFor();
    check((await form.getByLabel("Batch Size").inputValue()) === "64", "batch size shows its schema default");
    check((await form.getByLabel("Lr Schedule").inputValue()) === "constant", "lr schedule shows its default");
    const datasetSelect = form.getByLabel("Dataset Id");
    await datasetSelect.locator("option", { hasText: /^mnist \(/ }).waitFor({ state: "attached" });
    await datasetSelect.selectOption(await datasetSelect.locator("option", { hasText: /^mnist \(/ }).getAttribute("value"));
    // Out of range: the form refuses it with the schema's limit before the API sees it.
    await form.getByLabel("Lr", { exact: true }).fill("0");
    await form.getByRole("button", { name: "Submit train job" }).click();
    await form.getByText("Must be greater than 0").waitFor();
    await shot(page, "08-submit-validation");
    await form.getByLabel("Lr", { exact: true }).fill("0.05");
    await form.getByLabel("Epochs").fill("3");
    await form.getByLabel("Max Train Samples").fill("3000");
    await form.getByLabel("Checkpoint Every Steps").fill("0");
    await form.getByRole("button", { name: "Submit train job" }).click();
    await page.waitForURL(/#\/jobs\/job_/);
    jobUrl = page.url();
  });

  await step("job page: live progress and a chart that grows while it runs", async () => {
    await page.getByRole("heading", { name: "State timeline" }).waitFor();
    // Record every change the page makes, as it makes it (a MutationObserver in the page),
    // so slow screenshots or a busy machine cannot hide a short running phase.
    await page.evaluate((t0) => {
      const seen = (window.__jobSeen = []);
      const read = () => {
        const state = document.querySelector(".page-head .badge")?.textContent?.trim() ?? "";
        const progress = Number(document.querySelector("[data-testid=job-progress] progress")?.getAttribute("value") ?? 0);
        const caption = document.querySelector("figure[data-chart=Loss] figcaption")?.textContent ?? "";
        const points = Number((caption.match(/\((\d+) point/) ?? [])[1] ?? 0);
        const last = seen[seen.length - 1];
        if (!last || last.state !== state || last.points !== points || Math.abs(last.progress - progress) > 0.05) {
          seen.push({ t: Date.now() - t0, state, progress, points });
        }
      };
      new MutationObserver(read).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
      read();
    }, started);
    const deadline = Date.now() + JOB_TIMEOUT;
    let shotRunning = false;
    let shotChart = false;
    let samples = [];
    for (;;) {
      samples = await page.evaluate(() => window.__jobSeen);
      check(Date.now() < deadline, `job finished within ${JOB_TIMEOUT} ms; saw ${JSON.stringify(samples.slice(-5))}`);
      const now = samples[samples.length - 1];
      if (now.state === "running" && now.progress > 0 && !shotRunning) {
        shotRunning = true;
        await shot(page, "09-job-running");
      }
      if (now.state === "running" && now.points >= 1 && !shotChart) {
        shotChart = true;
        await shot(page, "10-job-chart-live");
      }
      if (["succeeded", "failed", "cancelled"].includes(now.state)) break;
      await page.waitForTimeout(250);
    }
    log(`  job timeline seen by the page: ${JSON.stringify(samples)}`);
    const final = samples[samples.length - 1];
    check(final.state === "succeeded", `job succeeded (${final.state}); error: ${await page.locator(".error").allInnerTexts()}`);
    const runningProgress = samples.filter((s) => s.state === "running").map((s) => s.progress);
    check(runningProgress.some((p) => p > 0 && p < 1), `progress moved while running: ${runningProgress}`);
    check(samples.some((s) => s.state === "running" && s.points >= 1), "the chart got points while the job was running (live, from SSE)");
    await page.waitForFunction(() => /\(3 points\)/.test(document.querySelector("figure[data-chart=Loss] figcaption")?.textContent ?? ""));
    await page.getByRole("heading", { name: "Final metrics" }).waitFor();
    check((await page.locator(".log div").count()) >= 3, "the log tail has lines");
    await shot(page, "11-job-succeeded");
  });

  await step("model version: metrics, sha256 and lineage", async () => {
    await page.getByRole("link", { name: "open version and lineage →" }).click();
    await page.getByRole("heading", { name: "Lineage" }).waitFor();
    await page.locator(".lineage .node-current").waitFor();
    check((await page.locator(".lineage .node-job").count()) === 1, "lineage shows the job");
    check((await page.locator(".lineage .node-data").count()) === 1, "lineage shows the training set");
    const sub = await page.locator(".lineage .node-data .node-sub").textContent();
    check(/3,000 train samples/.test(sub ?? ""), `training set count is shown: ${sub}`);
    check(/[0-9a-f]{64}/.test(await page.locator(".facts").first().innerText()), "sha256 is shown");
    const download = page.waitForEvent("download");
    await page.getByRole("button", { name: /Download checkpoint/ }).click();
    const file = await download;
    check(file.suggestedFilename().endsWith(".safetensors"), `checkpoint downloads: ${file.suggestedFilename()}`);
    await shot(page, "12-version-lineage");
  });

  await step("jobs list with filters", async () => {
    await go(page, "/jobs?kind=train&state=succeeded");
    await page.getByRole("heading", { name: "Jobs" }).waitFor();
    await page.locator("table tbody tr").first().waitFor();
    const states = await page.locator("table tbody .badge").allInnerTexts();
    check(states.length >= 2 && states.every((s) => s === "succeeded"), `state filter applies: ${states}`);
    await shot(page, "13-jobs-filtered");
  });

  // --- Diffusion: a tiny ddpm model (trained by the test's setup), one class unlearned
  // through the form, then the before/after grids of the same labels and seeds. ---
  const DDPM_JOB = process.env.E2E_DDPM_TRAIN_JOB;
  const api = async (path, init = {}) => {
    const r = await fetch(`${BASE}/api/v1${path}`, { ...init, headers: { Authorization: `Bearer ${KEY}`, ...(init.headers ?? {}) } });
    check(r.ok, `${init.method ?? "GET"} ${path}: HTTP ${r.status} ${await r.clone().text()}`);
    return r.json();
  };
  const waitJob = async (id, what) => {
    const deadline = Date.now() + JOB_TIMEOUT;
    let job = await api(`/jobs/${id}`);
    while (!["succeeded", "failed", "cancelled"].includes(job.state)) {
      check(Date.now() < deadline, `${what} finished within ${JOB_TIMEOUT} ms (${job.state})`);
      await new Promise((r) => setTimeout(r, 300));
      job = await api(`/jobs/${id}`);
    }
    check(job.state === "succeeded", `${what} succeeded: ${job.error}`);
    return job;
  };
  if (DDPM_JOB) {
    let original = "";
    let unlearned = "";
    await step("diffusion: unlearn class 7 with esd from the schema-driven form", async () => {
      const trained = await waitJob(DDPM_JOB, "ddpm training");
      original = trained.result_version_id;
      await go(page, `/jobs/new?kind=unlearn&model_version_id=${original}`);
      const method = page.getByLabel("Method");
      await method.locator("option", { hasText: /^esd/ }).waitFor({ state: "attached" });
      const offered = await method.locator("option").allInnerTexts();
      check(!offered.some((o) => /^finetune/.test(o)), `only ddpm methods are offered: ${offered}`);
      await method.selectOption("esd");
      await page.getByTestId("method-card").getByText("Erasing Concepts").waitFor();
      const form = page.getByRole("form", { name: "Submit an unlearn job" });
      check((await form.getByLabel("Negative Guidance").inputValue()) === "1", "esd's own params come from its schema with defaults");
      await form.getByLabel("Labels").fill("7");
      await form.getByLabel("Steps", { exact: true }).fill("3");
      await form.getByLabel("Batch Size").fill("4");
      await form.getByLabel("Trajectories").fill("1");
      await form.getByLabel("Ddim Steps").fill("2");
      await form.getByLabel("Evaluate", { exact: true }).uncheck();
      await shot(page, "26-unlearn-form");
      await form.getByRole("button", { name: "Submit unlearn job" }).click();
      await page.waitForURL(/#\/jobs\/job_/);
      const job = await waitJob(page.url().split("/").pop(), "esd unlearning");
      check(job.method === "esd" && job.model_version_id === original, `the form sent the version and method: ${job.method}`);
      unlearned = job.result_version_id;
    });

    await step("diffusion: before/after grids on the same labels and seeds", async () => {
      await go(page, `/generations/compare?a=${original}`);
      // The unlearned child is offered as the "after" version by itself.
      await page.waitForFunction((v) => document.querySelector("#compare-b")?.value === v, unlearned);
      const form = page.getByRole("form", { name: "Generation settings" });
      check((await form.getByLabel("Labels").inputValue()) === "0, 1, 2, 3, 4, 5, 6, 7, 8, 9", "one image per class by default");
      await form.getByLabel("Num Inference Steps").fill("10");
      await form.getByRole("button", { name: "Generate on both (or reuse)" }).click();
      const grids = () =>
        page.waitForFunction(() => {
          const imgs = [...document.querySelectorAll("[data-testid=before-after] img.grid-image")];
          return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
        }, null, { timeout: JOB_TIMEOUT });
      await grids();
      await page.getByText(/Same request on both/).waitFor();
      await shot(page, "27-before-after");
      // Asked again, the same request reuses both jobs rather than generating again.
      const before = (await api(`/jobs?kind=generate&model_id=${process.env.E2E_DDPM_MODEL}`)).data.length;
      await form.getByRole("button", { name: "Generate on both (or reuse)" }).click();
      await page.getByTestId("side-b").getByText(/reused an earlier generation/).waitFor();
      await grids();
      const after = (await api(`/jobs?kind=generate&model_id=${process.env.E2E_DDPM_MODEL}`)).data.length;
      check(before === 2 && after === 2, `the second request reused the two jobs (${before} → ${after})`);
    });

    await step("generations: list with grid thumbnails, detail with images", async () => {
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Generations" }).click();
      await page.waitForFunction(() => {
        const imgs = [...document.querySelectorAll(".generations img.grid-image")];
        return imgs.length >= 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
      });
      await shot(page, "28-generations");
      await page.getByRole("link", { name: /^Generation job_/ }).first().click();
      await page.getByRole("heading", { name: "Images" }).waitFor();
      await page.waitForFunction(() => {
        const imgs = [...document.querySelectorAll(".generated img")];
        return imgs.length === 10 && imgs.every((i) => i.complete && i.naturalWidth > 0);
      });
      check(/label 0 · seed 0/.test(await page.locator(".generated li").first().innerText()), "each image shows its label and seed");
      const download = page.waitForEvent("download");
      await page.getByRole("button", { name: "Download grid" }).click();
      check((await download).suggestedFilename().endsWith("grid.png"), "the grid downloads");
      await shot(page, "29-generation-detail");
    });

    await step("diffusion version: generate button and latest grid", async () => {
      await go(page, `/versions/${unlearned}`);
      await page.getByRole("link", { name: "Generate", exact: true }).waitFor();
      await page.waitForFunction(() => {
        const img = document.querySelector("[data-testid=latest-grid] img.grid-image");
        return img && img.complete && img.naturalWidth > 0;
      });
      await shot(page, "30-version-ddpm");
    });
  } else {
    log("  (diffusion flow skipped: E2E_DDPM_TRAIN_JOB is not set)");
  }

  await step("webhooks: register a receiver, secret shown once, rotate it", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Webhooks" }).click();
    const form = page.getByRole("form", { name: "Register a webhook" });
    await form.getByLabel(/^Url/).fill("https://hooks.example.test/expunge");
    await form.getByLabel("job.succeeded").check();
    await form.getByRole("button", { name: "Create webhook" }).click();
    const secret = page.locator(".secret p:nth-of-type(2) code");
    await secret.waitFor();
    const first = (await secret.innerText()).trim();
    check(first.startsWith("whsec_"), `the webhook secret is shown: ${first}`);
    await page.getByRole("button", { name: "I have stored it" }).click();
    await page.getByRole("table", { name: "Webhooks" }).getByText("job.succeeded").waitFor();
    await page.getByRole("button", { name: /^Rotate secret/ }).first().click();
    await page.getByRole("button", { name: /^Yes, rotate/ }).click();
    await secret.waitFor();
    const second = (await secret.innerText()).trim();
    check(second.startsWith("whsec_") && second !== first, "rotation shows a new secret");
    await shot(page, "31-webhooks");
    await page.getByRole("button", { name: "I have stored it" }).click();
  });

  let viewerKey = "";
  await step("API keys: create a viewer key, secret shown once", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "API keys" }).click();
    const form = page.getByRole("form", { name: "Create an API key" });
    await form.getByLabel("Name").fill(`e2e-viewer-${Date.now()}`);
    await form.getByLabel("Role").selectOption("viewer");
    await form.getByRole("button", { name: "Create key" }).click();
    const secret = page.locator(".secret code");
    await secret.waitFor();
    viewerKey = (await secret.innerText()).trim();
    check(viewerKey.startsWith("exp_"), "the new secret is shown");
    await shot(page, "14-keys");
  });

  await step("a viewer is not offered what it may not do", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API key").fill(viewerKey);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Signed in as").waitFor();
    await page.getByRole("heading", { name: "Service health" }).waitFor();
    check((await page.getByRole("link", { name: "API keys" }).count()) === 0, "no keys page for a viewer");
    check((await page.getByRole("link", { name: "Submit a job" }).count()) === 0, "no job submission for a viewer");
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Generations" }).click();
    await page.getByRole("heading", { name: "Generations" }).waitFor();
    await page.locator(".generations, .empty").first().waitFor();
    check((await page.getByRole("link", { name: "Generate images" }).count()) === 0, "no generating for a viewer");
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Models" }).click();
    await page.getByRole("link", { name: "demo-mnist-cnn" }).first().waitFor();
    check((await page.getByRole("button", { name: "Register a model" }).count()) === 0, "no model registration for a viewer");
    await shot(page, "15-viewer-models");
  });

  // --- The ORL deletion flow: one compliance officer files, another approves. ---
  const OFFICER_A = process.env.EXPUNGE_COMPLIANCE_KEY_A;
  const OFFICER_B = process.env.EXPUNGE_COMPLIANCE_KEY_B;
  const ORL_JOB = process.env.E2E_ORL_TRAIN_JOB;
  const ORL_DATASET = process.env.E2E_ORL_DATASET;
  const admin = async (path) => {
    const r = await fetch(`${BASE}/api/v1${path}`, { headers: { Authorization: `Bearer ${KEY}` } });
    check(r.ok, `GET ${path}: HTTP ${r.status} ${await r.clone().text()}`);
    return r.json();
  };
  const signInAs = async (key, role) => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API key").fill(key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Signed in as").waitFor();
    check((await page.locator(".topbar .badge").innerText()) === role, `signed in as ${role}`);
  };
  let requestUrl = "";
  let requestId = "";
  if (OFFICER_A && OFFICER_B && ORL_JOB && ORL_DATASET) {
    let subject = "";
    await step("deletion: the ORL model is trained (submitted by the test at start)", async () => {
      const deadline = Date.now() + JOB_TIMEOUT;
      let job = await admin(`/jobs/${ORL_JOB}`);
      while (!["succeeded", "failed", "cancelled"].includes(job.state)) {
        check(Date.now() < deadline, `ORL training finished within ${JOB_TIMEOUT} ms (${job.state})`);
        await new Promise((r) => setTimeout(r, 500));
        job = await admin(`/jobs/${ORL_JOB}`);
      }
      check(job.state === "succeeded", `ORL training succeeded: ${job.error}`);
      const samples = await admin(`/datasets/${ORL_DATASET}/samples?split=train&limit=50`);
      subject = samples.data.find((s) => s.subject_id)?.subject_id ?? "";
      check(subject, "an ORL training sample has a subject id");
      log(`  subject ${subject}`);
    });

    await step("deletion: compliance officer A previews the scope and files a request", async () => {
      await signInAs(OFFICER_A, "compliance");
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Deletion requests" }).click();
      await page.getByRole("heading", { name: "Deletion requests" }).waitFor();
      await page.locator("table, .empty").first().waitFor();
      await shot(page, "17-deletion-requests");
      await page.getByRole("link", { name: "File a request" }).click();
      const form = page.getByRole("form", { name: "File a deletion request" });
      await form.getByLabel("Subject ids").fill(subject);
      await form.getByLabel("Legal basis").selectOption("gdpr_art17");
      await form.getByLabel("Requester reference").fill("e2e-ticket-1");
      check(await form.getByRole("button", { name: "File request" }).isDisabled(), "filing waits for a scope preview");
      await form.getByRole("button", { name: "Preview scope" }).click();
      const preview = page.getByTestId("scope-preview");
      await preview.waitFor();
      const text = await preview.innerText();
      check(/Samples\s+([1-9]\d*)/.test(text), `the preview counts the subject's samples: ${text}`);
      check((await preview.getByRole("link", { name: /mv_/ }).count()) >= 1 || /mv_/.test(text), `the preview lists the trained version: ${text}`);
      await shot(page, "18-deletion-preview");
      await form.getByRole("button", { name: "File request" }).click();
      await page.waitForURL(/#\/deletion-requests\/dr_/);
      requestUrl = page.url();
      requestId = requestUrl.split("/").pop();
      await page.getByTestId("request-status").getByText("awaiting_approval").waitFor();
      const note = await page.getByTestId("action-note").first().innerText();
      check(/You filed this request/.test(note), `the filer is told why they cannot approve: ${note}`);
      check((await page.getByRole("button", { name: "Approve" }).count()) === 0, "no Approve button for the filer");
      await page.getByRole("heading", { name: "Plan" }).waitFor();
      await page.getByTestId("timeline").waitFor();
      await shot(page, "19-deletion-filed");
      // The overview lists it among the open requests, with its countdown.
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Overview" }).click();
      await page.getByRole("link", { name: `Deletion request ${requestId}` }).waitFor();
      check(/\d+ days left/.test(await page.getByRole("table", { name: "Open deletion requests by deadline" }).innerText()), "the open request shows its countdown");
      await shot(page, "19b-overview-open-request");
    });

    await step("deletion: officer B approves and watches it complete live", async () => {
      await signInAs(OFFICER_B, "compliance");
      await page.goto(requestUrl);
      await page.getByTestId("request-status").getByText("awaiting_approval").waitFor();
      await page.evaluate((t0) => {
        const seen = (window.__requestSeen = []);
        const read = () => {
          const status = document.querySelector("[data-testid=request-status] .badge")?.textContent?.trim() ?? "";
          const items = [...document.querySelectorAll("[data-testid=items] tbody tr")].map((tr) => tr.querySelector(".badge")?.textContent?.trim() ?? "");
          const last = seen[seen.length - 1];
          if (!last || last.status !== status || JSON.stringify(last.items) !== JSON.stringify(items)) seen.push({ t: Date.now() - t0, status, items });
        };
        new MutationObserver(read).observe(document.body, { subtree: true, childList: true, characterData: true });
        read();
      }, started);
      await page.getByRole("button", { name: "Approve" }).click();
      const deadline = Date.now() + JOB_TIMEOUT;
      let shotMoving = false;
      let seen = [];
      for (;;) {
        seen = await page.evaluate(() => window.__requestSeen);
        const now = seen[seen.length - 1];
        check(Date.now() < deadline, `the request finished within ${JOB_TIMEOUT} ms; saw ${JSON.stringify(seen.slice(-5))}`);
        if (["unlearning", "verifying"].includes(now.status) && !shotMoving) {
          shotMoving = true;
          await shot(page, "20-deletion-unlearning");
        }
        if (["completed", "failed"].includes(now.status)) break;
        await page.waitForTimeout(250);
      }
      log(`  request states seen by the page: ${JSON.stringify(seen)}`);
      check(seen[seen.length - 1].status === "completed", `the request completed: ${await page.locator(".error").allInnerTexts()}`);
      check(seen.some((s) => s.status === "unlearning"), "the page showed it unlearning before it completed (it followed it live)");
      await page.getByRole("button", { name: "Verify certificate" }).waitFor();
      // Completed: the page shows the salted commitments, the subject id is gone.
      const scope = await page.getByTestId("scope-redacted").innerText();
      check(/1 salted commitment/.test(scope) && !scope.includes(subject), `the scope shows commitments only: ${scope}`);
      // What the verdict proves: its level of evidence and sentence, every attempt with its
      // job, and the outcome (the ORL person is a whole class: the retrain makes it exact).
      const evidence = page.getByTestId("item-evidence").first();
      shown.evidence = {
        level: (await evidence.getByTestId("evidence-level").first().innerText()).trim(),
        sentence: await evidence.getByTestId("evidence-sentence").innerText(),
        attempts: await evidence.getByTestId("attempt").count(),
        attemptJobs: await evidence.getByTestId("attempt").getByRole("link", { name: /^Job job_/ }).count(),
        outcome: await page.getByTestId("outcome").innerText(),
      };
      log(`  evidence shown: ${JSON.stringify(shown.evidence)}`);
      check(shown.evidence.level === "exact" && /never saw it/.test(shown.evidence.sentence), `the item's level of evidence and its sentence are shown: ${JSON.stringify(shown.evidence)}`);
      check(shown.evidence.attempts >= 1 && shown.evidence.attemptJobs === shown.evidence.attempts, `every attempt is listed with its job: ${JSON.stringify(shown.evidence)}`);
      check(/^Outcome: erased/.test(shown.evidence.outcome), `the outcome is stated: ${shown.evidence.outcome}`);
      await shot(page, "21-deletion-completed");
    });

    await step("certificate: download, verify in the browser, view", async () => {
      const download = page.waitForEvent("download");
      await page.getByRole("button", { name: "Download JSON" }).click();
      const file = await download;
      check(file.suggestedFilename() === `certificate-${requestId}.json`, `certificate downloads: ${file.suggestedFilename()}`);
      const pdfDownload = page.waitForEvent("download");
      await page.getByRole("button", { name: "Download PDF" }).click();
      const pdfFile = await pdfDownload;
      const pdfHead = readFileSync(await pdfFile.path()).subarray(0, 5).toString();
      check(pdfFile.suggestedFilename() === `certificate-${requestId}.pdf` && pdfHead === "%PDF-", `the certificate downloads as a PDF: ${pdfFile.suggestedFilename()} ${pdfHead}`);
      await page.getByRole("button", { name: "Verify certificate" }).click();
      const result = page.getByTestId("verify-result");
      await result.waitFor();
      const text = await result.innerText();
      check(/✓ Verified/.test(text) && /valid Ed25519 signature/.test(text) && /Steps in the log/.test(text), `the certificate verifies: ${text}`);
      await shot(page, "22-certificate-verified");
      await page.getByRole("button", { name: "View certificate" }).click();
      await page.frameLocator("iframe.certificate").getByText(/Deletion certificate/i).first().waitFor();
      await page.getByRole("button", { name: "View certificate" }).scrollIntoViewIfNeeded();
      await shot(page, "23-certificate-view");
    });

    await step("audit log: events, verify the chain, checkpoints, an inclusion proof", async () => {
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit log" }).click();
      await page.getByTestId("audit-events").waitFor();
      await page.getByRole("button", { name: "Verify chain" }).click();
      const chain = page.getByTestId("chain-result");
      await chain.waitFor();
      check(/The log is intact/.test(await chain.innerText()), `the chain verifies: ${await chain.innerText()}`);
      await page.getByRole("form", { name: "Prove a certificate is in the log" }).getByLabel("Deletion request id").fill(requestId);
      await page.getByRole("button", { name: "Get proof" }).click();
      const proof = page.getByTestId("proof-result");
      await proof.waitFor();
      check(/✓ Proven/.test(await proof.innerText()), `the inclusion proof checks: ${await proof.innerText()}`);
      await page.getByTestId("checkpoints").getByText("✓ valid").first().waitFor();
      await shot(page, "24-audit");
    });

    await step("overview: deletion panels", async () => {
      await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Overview" }).click();
      await page.getByTestId("recent-certificates").getByRole("link").first().waitFor();
      // The two panels agree: the request with a certificate is not listed as open.
      const asOpen = await page.locator(`table a[href*="${requestId}"]`).count();
      const asDone = await page.getByTestId("recent-certificates").locator(`a[href*="${requestId}"]`).count();
      check(asOpen === 0 && asDone === 1, `the overview lists ${requestId} under recent certificates only (open: ${asOpen}, certificates: ${asDone})`);
      await page.getByTestId("latest-checkpoint").getByText("signature verified").waitFor();
      await shot(page, "25-overview-compliance");
    });
  } else {
    log("  (deletion flow skipped: EXPUNGE_COMPLIANCE_KEY_A/B, E2E_ORL_TRAIN_JOB and E2E_ORL_DATASET are not set)");
  }

  await step("an API error shows the API's message", async () => {
    await go(page, "/jobs/job_does_not_exist");
    const alert = page.getByRole("alert");
    await alert.waitFor();
    const text = await alert.innerText();
    check(/job job_does_not_exist not found/.test(text) && /404/.test(text), `404 message shown: ${text}`);
    await shot(page, "16-error-not-found");
  });
} catch (error) {
  failed = error;
  log(`✗ ${error instanceof Error ? error.stack : String(error)}`);
  await page.screenshot({ path: resolve(SHOTS, "failure.png"), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}

if (!failed && pageErrors.length) failed = new Error(`uncaught errors in the page: ${pageErrors.join(" | ")}`);
const summary = { ok: !failed, steps, seconds: (Date.now() - started) / 1000, pageErrors, screenshots: SHOTS, shown, error: failed ? String(failed) : null };
console.log(`E2E-SUMMARY ${JSON.stringify(summary)}`);
process.exit(failed ? 1 : 0);
