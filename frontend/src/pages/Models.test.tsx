import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { CAUSAL_LM, FAMILIES } from "../test/families";
import { cleanupPage, json, renderPage, type Handler } from "../test/harness";

const load = async () => (await import("./Models")).Models;

/** No models yet; POST /models bodies land in `posted`; the families are the harness's. */
function fakeApi(posted: unknown[]): Handler {
  return async (r, url) => {
    if (!url.pathname.endsWith("/api/v1/models")) return undefined;
    if (r.method === "POST") {
      posted.push(await r.json());
      return json({ id: "mdl_new" }, 201);
    }
    return json({ data: [], count: 0, next_cursor: null });
  };
}

async function openForm(posted: unknown[]) {
  await renderPage({ role: "engineer", path: "/models", route: "/models", load, handler: fakeApi(posted) });
  fireEvent.click(await screen.findByRole("button", { name: "Register a model" }));
  const family = screen.getByLabelText("Family *") as HTMLSelectElement;
  await waitFor(() => expect(within(family).getAllByRole("option")).toHaveLength(FAMILIES.length + 1));
  return family;
}

describe("registering a model", () => {
  afterEach(cleanupPage);

  it("offers every family the API declares, one it has no code for included", async () => {
    const family = await openForm([]);
    expect(within(family).getAllByRole("option").map((o) => (o as HTMLOptionElement).value)).toEqual(["", ...FAMILIES.map((f) => f.name)]);
    // No architecture form until the family is chosen.
    expect(screen.queryByRole("form", { name: "Register a model" })).toBeNull();
  });

  it("builds the architecture form of a new family from its declared schema", async () => {
    const posted: unknown[] = [];
    const family = await openForm(posted);
    fireEvent.change(family, { target: { value: CAUSAL_LM.name } });
    expect(screen.getByText(CAUSAL_LM.summary)).toBeTruthy();
    const form = await screen.findByRole("form", { name: "Register a model" });
    expect(within(within(form).getByLabelText("Base")).getAllByRole("option").map((o) => o.textContent)).toEqual(["(default)", "smollm2-135m", "tiny-llama", "uploaded"]);
    expect((within(form).getByLabelText("Hidden Size") as HTMLInputElement).value).toBe("64");
    expect(within(form).queryByLabelText("Num Classes *")).toBeNull();
    fireEvent.change(within(form).getByLabelText("Name *"), { target: { value: "people-lm" } });
    fireEvent.change(within(form).getByLabelText("Base"), { target: { value: "tiny-llama" } });
    fireEvent.click(within(form).getByRole("button", { name: "Register model" }));
    await screen.findByText("elsewhere");
    expect(posted).toEqual([{ name: "people-lm", family: "causal_lm", architecture: { base: "tiny-llama", hidden_size: 64 } }]);
  });

  it("offers a classifier the architecture names its family declares", async () => {
    const family = await openForm([]);
    fireEvent.change(family, { target: { value: "classifier" } });
    const form = await screen.findByRole("form", { name: "Register a model" });
    const names = within(within(form).getByLabelText("Name *", { selector: "select" })).getAllByRole("option").map((o) => o.textContent);
    expect(names).toEqual(["Choose…", ...FAMILIES[0].architectures]);
  });
});
