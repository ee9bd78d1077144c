// Regenerate the typed API client's inputs: openapi.json from the backend, then
// src/api/schema.d.ts from it. `npm run gen:api` (add --no-fetch to only redo the types).
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const frontend = resolve(here, "..");
const repo = resolve(frontend, "..");

function python() {
  if (process.env.EXPUNGE_PYTHON) return process.env.EXPUNGE_PYTHON;
  const venv = resolve(repo, ".venv/bin/python");
  return existsSync(venv) ? venv : "python3";
}

if (!process.argv.includes("--no-fetch")) {
  const py = python();
  const doc = execFileSync(py, ["-m", "cli.openapi"], {
    cwd: repo,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["ignore", "pipe", "inherit"],
  });
  writeFileSync(resolve(frontend, "openapi.json"), doc);
  console.log(`openapi.json written (${doc.length} bytes, by ${py} -m cli.openapi)`);
}

execFileSync(
  resolve(frontend, "node_modules/.bin/openapi-typescript"),
  ["openapi.json", "-o", "src/api/schema.d.ts", "--root-types", "--alphabetize"],
  { cwd: frontend, stdio: "inherit" },
);
