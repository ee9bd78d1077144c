/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies /api to a running `expunge up` (EXPUNGE_API, default :8000).
const api = process.env.EXPUNGE_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  // Relative asset URLs: the API serves dist/ at /, and routes live in the hash.
  base: "./",
  server: { proxy: { "/api": { target: api } } },
  // The job page (and with it the charting library) is a lazy chunk: see App.tsx.
  build: { chunkSizeWarningLimit: 700 },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["src/test/setup.ts"],
    pool: "threads",
    maxWorkers: 2,
    // Interaction tests (userEvent through a whole page) take 1-2 s on an idle 2-core
    // machine and 5-10 s while workers train beside them; a timeout is a hang guard here,
    // not a speed check (timing never decides a test: docs/RELIABILITY.md).
    testTimeout: 30000,
  },
});
