import { fireEvent, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { cleanupPage, fakeRequest, json, renderPage } from "../test/harness";
import { localInputToIso, parseConcept, parseIds } from "./DeletionRequestNew";

const load = async () => (await import("./DeletionRequestNew")).DeletionRequestNew;

describe("filing a deletion request", () => {
  afterEach(cleanupPage);

  it("reads ids one per line or comma separated", () => {
    expect(parseIds(" s1\ns2, s3 ;s1\n\n")).toEqual(["s1", "s2", "s3"]);
    expect(localInputToIso("")).toBeUndefined();
    expect(localInputToIso("2026-11-28T10:00")).toMatch(/^2026-11-2\dT\d\d:00:00\.000Z$/);
  });

  it("reads a concept as one class, several, or a name", () => {
    expect(parseConcept(" 3 ")).toEqual({ label: 3 });
    expect(parseConcept("1, 4,1")).toEqual({ labels: [1, 4] });
    expect(parseConcept("striped")).toEqual({ name: "striped" });
    expect(parseConcept("Sneaker, striped")).toEqual({ name: "Sneaker, striped" });
    expect(parseConcept("   ")).toBeNull();
  });

  it("files only after a preview of exactly what is filed", async () => {
    const bodies: Record<string, unknown>[] = [];
    await renderPage({
      role: "compliance",
      path: "/deletion-requests/new",
      route: "/deletion-requests/new",
      load,
      handler: async (r, url) => {
        if (url.pathname.endsWith("/preview")) {
          bodies.push(await r.json());
          return json({ scope_kind: "subject_ids", blast_radius: { datasets: { ds_1: 10 }, samples: 10, versions: ["mv_1"], descendants: [], unverifiable_versions: [] }, nothing_to_delete: false, due_at: "2026-12-28T10:00:00Z" });
        }
        if (url.pathname.endsWith("/deletion-requests") && r.method === "POST") return json(fakeRequest({ id: "dr_new" }), 201);
        if (url.pathname.endsWith("/datasets") || url.pathname.endsWith("/models")) return json({ data: [{ id: "ds_1", name: "orl-faces" }], count: 1, next_cursor: null });
        return undefined;
      },
    });
    const file = (await screen.findByRole("button", { name: "File request" })) as HTMLButtonElement;
    expect(file.disabled).toBe(true);
    fireEvent.click(screen.getByRole("button", { name: "Preview scope" }));
    expect((await screen.findByRole("alert")).textContent).toContain("Give at least one subject id");
    fireEvent.change(screen.getByLabelText("Subject ids"), { target: { value: "s12\ns13" } });
    fireEvent.change(screen.getByLabelText("Requester reference"), { target: { value: "T-9" } });
    fireEvent.click(screen.getByRole("button", { name: "Preview scope" }));
    const preview = await screen.findByTestId("scope-preview");
    expect(preview.textContent).toContain("10 samples");
    expect(bodies[0]).toMatchObject({ scope: { subject_ids: ["s12", "s13"] }, legal_basis: "gdpr_art17", requester_reference: "T-9" });
    await waitFor(() => expect(file.disabled).toBe(false));
    // Changing the draft invalidates the preview: it must be previewed again.
    fireEvent.change(screen.getByLabelText("Subject ids"), { target: { value: "s12" } });
    expect(screen.queryByTestId("scope-preview")).toBeNull();
    expect(file.disabled).toBe(true);
  });

  it("uploads a CSV, lists what it filed, and shows why a CSV is refused", async () => {
    let refuse = false;
    const sent: FormData[] = [];
    await renderPage({
      role: "admin",
      path: "/deletion-requests/new",
      route: "/deletion-requests/new",
      load,
      handler: async (r, url) => {
        if (url.pathname.endsWith("/bulk")) {
          sent.push(await r.formData());
          if (refuse) return json({ detail: "line 3: legal_basis: Input should be 'gdpr_art17', 'ccpa' or 'other'", code: "unprocessable", field: "file" }, 422);
          return json({ data: [fakeRequest({ id: "dr_a" }), fakeRequest({ id: "dr_b" })], count: 2, next_cursor: null }, 201);
        }
        return json({ data: [], count: 0, next_cursor: null });
      },
    });
    const upload = (await screen.findByRole("button", { name: "Upload CSV" })) as HTMLButtonElement;
    expect(upload.disabled).toBe(true);
    const csv = new File(["subject_id,legal_basis\ns1,gdpr_art17\n"], "requests.csv", { type: "text/csv" });
    fireEvent.change(screen.getByLabelText("CSV file"), { target: { files: [csv] } });
    fireEvent.click(upload);
    expect((await screen.findByText(/Filed 2 requests/)).textContent).toContain("dr_a");
    expect((sent[0].get("file") as File).name).toBe("requests.csv");
    refuse = true;
    fireEvent.click(upload);
    expect((await screen.findByRole("alert")).textContent).toContain("line 3: legal_basis");
  });

  it("is not offered to an engineer", async () => {
    await renderPage({ role: "engineer", path: "/deletion-requests/new", route: "/deletion-requests/new", load, handler: () => json({ data: [], count: 0, next_cursor: null }) });
    expect(await screen.findByText("Filing deletion requests needs the compliance or admin role.")).toBeTruthy();
  });
});
