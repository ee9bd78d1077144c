import { describe, expect, it } from "vitest";

import { deadline } from "./deletion";

const NOW = Date.parse("2026-11-28T12:00:00Z");
const at = (hours: number) => new Date(NOW + hours * 3_600_000).toISOString();

describe("deadline countdown", () => {
  it("counts days while far off", () => {
    expect(deadline(at(24 * 20 + 5), "awaiting_approval", NOW)).toMatchObject({ text: "20 days left", tone: "ok" });
  });

  it("flags a deadline within seven days as due soon", () => {
    expect(deadline(at(24 * 6), "unlearning", NOW)).toMatchObject({ text: "6 days left", tone: "soon" });
    expect(deadline(at(30), "scoped", NOW)).toMatchObject({ text: "1 day 6 h left", tone: "soon" });
    expect(deadline(at(5.5), "received", NOW)).toMatchObject({ text: "5 h 30 min left", tone: "soon" });
    expect(deadline(at(0.25), "received", NOW)).toMatchObject({ text: "15 min left", tone: "soon" });
  });

  it("says by how much an open request is overdue", () => {
    const d = deadline(at(-24 * 3 - 2), "awaiting_approval", NOW);
    expect(d).toMatchObject({ text: "overdue by 3 days", tone: "overdue" });
    expect(d.label).toBe("Deadline passed: overdue by 3 days");
    expect(deadline(at(-2), "verifying", NOW).text).toBe("overdue by 2 h 0 min");
  });

  it("has no countdown once the request is closed", () => {
    for (const status of ["completed", "failed", "rejected", "cancelled"]) {
      expect(deadline(at(-100), status, NOW).tone).toBe("closed");
    }
  });
});
