import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";

import { ApiError } from "../api/errors";
import { componentSchema, discriminatedBodies, type JsonSchema } from "../api/openapi";
import { SchemaForm } from "./SchemaForm";

const TRAIN = discriminatedBodies("/api/v1/jobs", "post").train;
const PARAMS = componentSchema("TrainParams").properties!;

function renderTrainForm(onSubmit = vi.fn(async () => undefined)) {
  render(<SchemaForm label="Train" schema={TRAIN} submitLabel="Submit" onSubmit={onSubmit} />);
  return onSubmit;
}

describe("SchemaForm on the train job body", () => {
  it("renders every TrainParams field with its default and description", () => {
    renderTrainForm();
    const group = screen.getByRole("group", { name: "Params" });
    expect((within(group).getByLabelText("Batch Size") as HTMLInputElement).value).toBe(String(PARAMS.batch_size.default));
    expect((within(group).getByLabelText("Epochs") as HTMLInputElement).value).toBe(String(PARAMS.epochs.default));
    expect((within(group).getByLabelText("Lr") as HTMLInputElement).value).toBe(String(PARAMS.lr.default));
    expect((within(group).getByLabelText("Optimizer") as HTMLSelectElement).value).toBe("sgd");
    expect(within(group).getByText(PARAMS.weight_decay.description!)).toBeTruthy();
    // Range limits reach the input too, for the browser's own spinner.
    expect(within(group).getByLabelText("Epochs").getAttribute("max")).toBe(String(PARAMS.epochs.maximum));
    // The discriminator is fixed, not a field.
    expect(screen.queryByLabelText("Kind")).toBeNull();
  });

  it("refuses out-of-range values and missing ids before calling the API", async () => {
    const user = userEvent.setup();
    const onSubmit = renderTrainForm();
    const lr = screen.getByLabelText("Lr");
    await user.clear(lr);
    await user.type(lr, "0");
    await user.click(screen.getByRole("button", { name: "Submit" }));
    expect(onSubmit).not.toHaveBeenCalled();
    expect(screen.getByText("Must be greater than 0")).toBeTruthy();
    expect(lr.getAttribute("aria-invalid")).toBe("true");
    expect(lr.getAttribute("aria-describedby")).toContain("error");
    expect(screen.getAllByText("Required")).toHaveLength(2); // model_id, dataset_id
  });

  it("submits typed values and shows the API's refusal on its field", async () => {
    const user = userEvent.setup();
    const onSubmit = vi.fn(async () => {
      throw new ApiError(422, "dataset 'x' has no training samples", "unprocessable", "dataset_id");
    });
    renderTrainForm(onSubmit);
    await user.type(screen.getByLabelText(/Model Id/), "mdl_1");
    await user.type(screen.getByLabelText(/Dataset Id/), "ds_1");
    const epochs = screen.getByLabelText("Epochs");
    await user.clear(epochs);
    await user.type(epochs, "3");
    await user.click(screen.getByRole("button", { name: "Submit" }));
    expect(onSubmit).toHaveBeenCalledTimes(1);
    const body = (onSubmit.mock.calls[0] as unknown[])[0] as Record<string, unknown>;
    expect(body).toMatchObject({ kind: "train", model_id: "mdl_1", dataset_id: "ds_1", params: { epochs: 3, batch_size: PARAMS.batch_size.default } });
    expect(await screen.findByRole("alert")).toBeTruthy();
    expect(screen.getAllByText("dataset 'x' has no training samples").length).toBeGreaterThanOrEqual(1);
    expect(screen.getByLabelText(/Dataset Id/).getAttribute("aria-invalid")).toBe("true");
  });
});

describe("the API's validation errors land on their fields", () => {
  it("maps a union body's loc (body → variant → field) onto the draft", async () => {
    const { toApiError } = await import("../api/errors");
    const body = {
      detail: [{ loc: ["body", "train", "params", "lr"], msg: "Input should be greater than 0", type: "greater_than" }],
      code: "validation_error",
      message: "train.params.lr: Input should be greater than 0",
    };
    const error = toApiError(body, new Response(null, { status: 422 }));
    expect(error.fields).toEqual({ "train.params.lr": "Input should be greater than 0" });
    const user = userEvent.setup();
    renderTrainForm(vi.fn(async () => {
      throw error;
    }));
    await user.type(screen.getByLabelText(/Model Id/), "m");
    await user.type(screen.getByLabelText(/Dataset Id/), "d");
    await user.click(screen.getByRole("button", { name: "Submit" }));
    expect(await screen.findByText("Input should be greater than 0")).toBeTruthy();
    expect(screen.getByLabelText("Lr").getAttribute("aria-invalid")).toBe("true");
  });
});

describe("SchemaForm on a union of objects", () => {
  const schema: JsonSchema = {
    type: "object",
    properties: {
      params: {
        title: "Params",
        anyOf: [
          { type: "object", title: "TrainParams", properties: { lr: { type: "number", title: "Lr", default: 0.1 } } },
          { type: "object", title: "DiffusionTrainParams", required: ["steps"], properties: { steps: { type: "integer", title: "Steps", minimum: 1 } } },
        ],
      },
    },
  };

  it("offers the alternatives by name and submits the chosen one's fields", async () => {
    const user = userEvent.setup();
    const onSubmit = vi.fn(async () => undefined);
    render(<SchemaForm label="Union" schema={schema} submitLabel="Submit" onSubmit={onSubmit} />);
    const group = screen.getByRole("group", { name: "Params" });
    expect((within(group).getByLabelText("Lr") as HTMLInputElement).value).toBe("0.1");
    await user.selectOptions(within(group).getByLabelText("Params: kind"), "DiffusionTrainParams");
    expect(within(group).queryByLabelText("Lr")).toBeNull();
    await user.type(within(group).getByLabelText(/Steps/), "7");
    await user.click(screen.getByRole("button", { name: "Submit" }));
    expect(onSubmit).toHaveBeenCalledWith({ params: { steps: 7 } });
  });
});
