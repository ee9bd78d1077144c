// End-to-end run of the dashboard in Debian's headless Chromium against a real server.
//   EXPUNGE_URL=http://127.0.0.1:8123 EXPUNGE_KEY=exp_... node e2e/run.mjs
// Saves a screenshot of each page under test-output/screenshots/ (or SCREENSHOT_DIR)
// and exits non-zero on the first failed step. No browser is downloaded.
import { mkdirSync } from "node:fs";
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
page.on("pageerror", (err) => pageErrors.push(String(err)));

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
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Models" }).click();
    await page.getByRole("link", { name: "demo-mnist-cnn" }).first().waitFor();
    check((await page.getByRole("button", { name: "Register a model" }).count()) === 0, "no model registration for a viewer");
    await shot(page, "15-viewer-models");
  });

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
const summary = { ok: !failed, steps, seconds: (Date.now() - started) / 1000, pageErrors, screenshots: SHOTS, error: failed ? String(failed) : null };
console.log(`E2E-SUMMARY ${JSON.stringify(summary)}`);
process.exit(failed ? 1 : 0);
