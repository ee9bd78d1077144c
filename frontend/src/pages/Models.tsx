import { useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Link, useNavigate } from "react-router";

import { api, unwrap } from "../api/client";
import { architectureSchema, familyNamed, useFamilies, type Family } from "../api/families";
import { requestSchema, type JsonSchema } from "../api/openapi";
import { useModels } from "../api/queries";
import type { ModelCreate } from "../api/types";
import { useCan } from "../auth";
import { Pager, useCursorPager } from "../components/Pager";
import { Empty, ErrorMessage, QueryView } from "../components/States";
import { Time } from "../components/Time";
import { SchemaForm } from "../forms/SchemaForm";

const CREATE = requestSchema("/api/v1/models", "post");

/**
 * POST /models for a model of `family`: the family fixed, the architecture the form the
 * family declares (its architecture names as the choices), name and description as the
 * API states them.
 */
export function createSchema(family: Family): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const [name, raw] of Object.entries(CREATE.properties ?? {})) {
    if (name === "family") properties[name] = { type: "string", const: family.name };
    else if (name === "architecture") properties[name] = { ...architectureSchema(family), title: "Architecture", description: raw.description };
    else properties[name] = raw;
  }
  return { ...CREATE, properties };
}

function CreateModel(): ReactNode {
  const [open, setOpen] = useState(false);
  const [familyName, setFamilyName] = useState("");
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const families = useFamilies();
  const family = familyNamed(families.data, familyName);
  return (
    <>
      <div className="actions">
        <button type="button" aria-expanded={open} onClick={() => setOpen(!open)}>
          Register a model
        </button>
      </div>
      {open && (
        <div className="card">
          <h2>Register a model</h2>
          <p className="muted">{CREATE.description ?? "A model is a family and an architecture; its versions are checkpoints."}</p>
          {families.error !== null && <ErrorMessage error={families.error} title="Could not load the model families" retry={() => void families.refetch()} />}
          <div className="field">
            <label htmlFor="model-family" className="label">
              Family *
            </label>
            <select id="model-family" value={familyName} onChange={(e) => setFamilyName(e.target.value)} aria-describedby="model-family-help">
              <option value="">{families.isPending ? "Loading families…" : "Choose a family"}</option>
              {(families.data ?? []).map((f) => (
                <option key={f.name} value={f.name}>
                  {f.title || f.name}
                </option>
              ))}
            </select>
            <span className="help" id="model-family-help">
              {family ? family.summary : "What kind of model: its family decides the architectures and the jobs it runs."}
            </span>
          </div>
          {family && <SchemaForm
            key={family.name}
            label="Register a model"
            schema={createSchema(family)}
            submitLabel="Register model"
            order={["name", "description", "architecture", "architecture.name", "architecture.num_classes", "architecture.in_channels", "architecture.input_size", "architecture.width"]}
            onSubmit={async (value) => {
              const model = await unwrap(api.POST("/api/v1/models", { body: value as unknown as ModelCreate }));
              void queryClient.invalidateQueries({ queryKey: ["models"] });
              navigate(`/models/${model.id}`);
            }}
          />}
        </div>
      )}
    </>
  );
}

export function Models(): ReactNode {
  const pager = useCursorPager("models");
  const models = useModels(pager.cursor);
  const canWrite = useCan("write");
  return (
    <section>
      <div className="page-head">
        <h1>Models</h1>
      </div>
      {canWrite && <CreateModel />}
      <QueryView query={models} what="models">
        {(page) =>
          page.data.length === 0 ? (
            <Empty>No models yet.</Empty>
          ) : (
            <>
              <p className="muted">{page.count} model(s)</p>
              <table className="table">
                <caption className="sr-only">Models</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Family</th>
                    <th scope="col">Architecture</th>
                    <th scope="col" className="num">Classes</th>
                    <th scope="col" className="num">Latest version</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  {page.data.map((m) => (
                    <tr key={m.id}>
                      <td>
                        <Link to={`/models/${m.id}`}>{m.name}</Link>
                        {m.description && <div className="muted small">{m.description}</div>}
                      </td>
                      <td>{m.family}</td>
                      <td>{String(m.architecture.name ?? "—")}</td>
                      <td className="num">{String(m.architecture.num_classes ?? "—")}</td>
                      <td className="num">{m.latest_version ? `v${m.latest_version}` : <span className="muted">none</span>}</td>
                      <td>
                        <Time value={m.created_at} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <Pager label="Models" page={pager.page} nextCursor={page.next_cursor} onNext={pager.next} onPrev={pager.prev} />
            </>
          )
        }
      </QueryView>
    </section>
  );
}
