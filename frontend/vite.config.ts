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
  },
});
