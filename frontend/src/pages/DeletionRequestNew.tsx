import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent, type ReactNode } from "react";
import { Link, useNavigate } from "react-router";

import { api, unwrap } from "../api/client";
import { LEGAL_BASIS_TEXT } from "../api/deletion";
import { componentSchema, deref, type JsonSchema } from "../api/openapi";
import { useAllDatasets, useAllModels } from "../api/queries";
import type { DeletionPreview, DeletionRequestCreate } from "../api/types";
import { useCan } from "../auth";
import { ShortId } from "../components/Badges";
import { Facts } from "../components/KeyValue";
import { Empty, ErrorMessage } from "../components/States";
import { Time } from "../components/Time";
import { toFormData } from "../forms/schema";

// Choices and limits come from the API's own schema (openapi.json).
const CREATE = componentSchema("DeletionRequestCreate");
const BASES = (CREATE.properties?.legal_basis?.enum ?? []).map(String);
const REF_MAX = CREATE.properties?.requester_reference?.maxLength ?? 200;
const SCOPE = deref(CREATE.properties?.scope ?? {});
const arrayOf = (s: JsonSchema | undefined) => (s?.anyOf ?? [s ?? {}]).find((v) => v.type === "array");
const MAX_IDS = {
  subject_ids: arrayOf(SCOPE.properties?.subject_ids)?.maxItems ?? 10_000,
  sample_ids: arrayOf(SCOPE.properties?.sample_ids)?.maxItems ?? 100_000,
};

type Kind = "subject_ids" | "sample_ids" | "concept";

/** "3" → one label, "1, 4" → several, anything else (e.g. "striped", "Sneaker, striped") → a name. */
export function parseConcept(text: string): { label: number } | { labels: number[] } | { name: string } | null {
  const trimmed = text.trim();
  if (!trimmed) return null;
  const parts = trimmed.split(",").map((p) => p.trim());
  if (parts.every((p) => /^\d+$/.test(p))) {
    const labels = [...new Set(parts.map(Number))];
    return labels.length === 1 ? { label: labels[0] as number } : { labels };
  }
  return { name: trimmed };
}
const KIND_TEXT: Record<Kind, string> = { subject_ids: "Data subjects", sample_ids: "Samples", concept: "A class of a model (concept)" };

/** Ids typed one per line, or separated by commas or spaces. */
export function parseIds(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).map((s) => s.trim()).filter(Boolean))];
}

/** `datetime-local` value (the user's zone) → ISO 8601 UTC, or undefined when empty. */
export function localInputToIso(value: string): string | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

function ScopePreview({ preview }: { preview: DeletionPreview }): ReactNode {
  const datasets = useAllDatasets();
  const names = new Map((datasets.data ?? []).map((d) => [d.id, d.name]));
  const br = preview.blast_radius as { datasets?: Record<string, number>; samples?: number; versions?: string[]; descendants?: string[]; unverifiable_versions?: string[] };
  const list = (ids: string[] | undefined, none: string) =>
    ids?.length ? (
      <ul className="plain">
        {ids.map((v) => (
          <li key={v}>
            <Link to={`/versions/${v}`}>
              <ShortId id={v} />
            </Link>
          </li>
        ))}
      </ul>
    ) : (
      <span className="muted">{none}</span>
    );
  return (
    <section className="card preview" aria-labelledby="preview-h" data-testid="scope-preview">
      <h2 id="preview-h">Scope preview</h2>
      {preview.nothing_to_delete && <p className="notice">Nothing matches this scope: filed, the request completes at once with a certificate saying so.</p>}
      <Facts
        items={[
          ["Samples", String(br.samples ?? 0)],
          [
            "Datasets",
            Object.keys(br.datasets ?? {}).length ? (
              <ul className="plain">
                {Object.entries(br.datasets ?? {}).map(([id, n]) => (
                  <li key={id}>
                    <Link to={`/datasets/${id}`}>{names.get(id) ?? id}</Link>: {n} samples
                  </li>
                ))}
              </ul>
            ) : (
              <span className="muted">none</span>
            ),
          ],
          ["Model versions trained on them", list(br.versions, "none")],
          ["Versions fine-tuned from those (retired)", list(br.descendants, "none")],
          ["Uploaded versions (lineage unknown)", list(br.unverifiable_versions, "none")],
          ["Deadline if filed now", <Time value={preview.due_at} />],
        ]}
      />
      <p className="muted small">Nothing has been filed or tainted yet.</p>
    </section>
  );
}

function BulkUpload(): ReactNode {
  const id = useId();
  const [file, setFile] = useState<File | null>(null);
  const queryClient = useQueryClient();
  const upload = useMutation({
    mutationFn: (f: File) =>
      unwrap(
        api.POST("/api/v1/deletion-requests/bulk", {
          body: { file: f } as never,
          bodySerializer: () => toFormData({ file: f }),
        }),
      ),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ["deletion-requests"] }),
  });
  return (
    <section className="card" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>Bulk upload (CSV)</h2>
      <p className="muted">
        One request per row. Header: <code>subject_id,legal_basis,requester_reference</code> (legal basis defaults to gdpr_art17). The whole file is refused if any row is invalid.
      </p>
      <form
        aria-label="Bulk upload deletion requests"
        onSubmit={(e) => {
          e.preventDefault();
          if (file) upload.mutate(file);
        }}
      >
        <label htmlFor={`${id}-file`}>CSV file</label>
        <input id={`${id}-file`} type="file" accept=".csv,text/csv" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        <div className="actions">
          <button type="submit" disabled={!file || upload.isPending}>
            {upload.isPending ? "Uploading…" : "Upload CSV"}
          </button>
        </div>
      </form>
      {upload.error && <ErrorMessage error={upload.error} title="The CSV was refused" />}
      {upload.data && (
        <div className="notice" role="status">
          Filed {upload.data.count} request{upload.data.count === 1 ? "" : "s"}:{" "}
          {upload.data.data.map((r, i) => (
            <span key={r.id}>
              {i > 0 && ", "}
              <Link to={`/deletion-requests/${r.id}`}>
                <ShortId id={r.id} />
              </Link>
            </span>
          ))}
        </div>
      )}
    </section>
  );
}

export function DeletionRequestNew(): ReactNode {
  const canComply = useCan("comply");
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const models = useAllModels();
  useAllDatasets(); // the preview names datasets: have them ready
  const [kind, setKind] = useState<Kind>("subject_ids");
  const [ids, setIds] = useState("");
  const [modelId, setModelId] = useState("");
  const [label, setLabel] = useState("");
  const [basis, setBasis] = useState(BASES[0] ?? "gdpr_art17");
  const [reference, setReference] = useState("");
  const [received, setReceived] = useState("");
  const [formError, setFormError] = useState<string | null>(null);
  const [previewed, setPreviewed] = useState<{ key: string; preview: DeletionPreview } | null>(null);

  const build = (): DeletionRequestCreate | string => {
    let scope: DeletionRequestCreate["scope"];
    if (kind === "concept") {
      if (!modelId) return "Choose the model whose class is to be forgotten.";
      const concept = parseConcept(label);
      if (concept === null) return "Give the class: its number, several numbers separated by commas, or a name.";
      scope = { concept: { model_id: modelId, ...concept } };
    } else {
      const list = parseIds(ids);
      if (!list.length) return `Give at least one ${kind === "subject_ids" ? "subject id" : "sample id"}.`;
      if (list.length > MAX_IDS[kind]) return `At most ${MAX_IDS[kind]} ids per request.`;
      scope = kind === "subject_ids" ? { subject_ids: list } : { sample_ids: list };
    }
    return { scope, legal_basis: basis as DeletionRequestCreate["legal_basis"], requester_reference: reference.trim(), received_at: localInputToIso(received) ?? null };
  };
  const draft = build();
  const draftKey = JSON.stringify(draft);
  const current = previewed && previewed.key === draftKey ? previewed.preview : null;

  const preview = useMutation({
    mutationFn: (body: DeletionRequestCreate) => unwrap(api.POST("/api/v1/deletion-requests/preview", { body })),
    onSuccess: (p, body) => setPreviewed({ key: JSON.stringify(body), preview: p }),
  });
  const file = useMutation({
    mutationFn: (body: DeletionRequestCreate) => unwrap(api.POST("/api/v1/deletion-requests", { body })),
    onSuccess: (created) => {
      void queryClient.invalidateQueries({ queryKey: ["deletion-requests"] });
      queryClient.setQueryData(["deletion-request", created.id], created);
      navigate(`/deletion-requests/${created.id}`);
    },
  });

  if (!canComply) {
    return (
      <section>
        <h1>File a deletion request</h1>
        <Empty>Filing deletion requests needs the compliance or admin role.</Empty>
      </section>
    );
  }

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    if (typeof draft === "string") {
      setFormError(draft);
      return;
    }
    setFormError(null);
    if (!current) preview.mutate(draft);
    else file.mutate(draft);
  };

  return (
    <section>
      <p className="crumbs">
        <Link to="/deletion-requests">Deletion requests</Link> /
      </p>
      <h1>File a deletion request</h1>
      <div className="grid-2">
        <form className="card schema-form" aria-label="File a deletion request" onSubmit={onSubmit} noValidate>
          <fieldset>
            <legend>What is to be deleted</legend>
            {(Object.keys(KIND_TEXT) as Kind[]).map((k) => (
              <label key={k} className="check-option">
                <input type="radio" name="scope-kind" value={k} checked={kind === k} onChange={() => setKind(k)} /> {KIND_TEXT[k]}
              </label>
            ))}
          </fieldset>
          {kind === "concept" ? (
            <>
              <div className="field">
                <label htmlFor="dr-model">Model</label>
                <select id="dr-model" value={modelId} onChange={(e) => setModelId(e.target.value)}>
                  <option value="">Choose…</option>
                  {(models.data ?? []).map((m) => (
                    <option key={m.id} value={m.id}>
                      {m.name}
                    </option>
                  ))}
                </select>
              </div>
              <div className="field">
                <label htmlFor="dr-label">Class</label>
                <input id="dr-label" value={label} onChange={(e) => setLabel(e.target.value)} aria-describedby="dr-label-help" />
                <p id="dr-label-help" className="help">
                  A class number (<code>3</code>), several (<code>1, 4, 7</code>), or a name from the model's dataset: a label
                  name (<code>person-07</code>) or a style or object of the objects × styles set (<code>striped</code>).
                </p>
              </div>
            </>
          ) : (
            <div className="field">
              <label htmlFor="dr-ids">{kind === "subject_ids" ? "Subject ids" : "Sample ids"}</label>
              <textarea id="dr-ids" rows={4} value={ids} onChange={(e) => setIds(e.target.value)} aria-describedby="dr-ids-help" />
              <p id="dr-ids-help" className="help">
                One per line, or separated by commas. {parseIds(ids).length ? `${parseIds(ids).length} given.` : ""}
              </p>
            </div>
          )}
          <div className="field">
            <label htmlFor="dr-basis">Legal basis</label>
            <select id="dr-basis" value={basis} onChange={(e) => setBasis(e.target.value)}>
              {BASES.map((b) => (
                <option key={b} value={b}>
                  {LEGAL_BASIS_TEXT[b] ?? b}
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor="dr-ref">Requester reference</label>
            <input id="dr-ref" maxLength={REF_MAX} value={reference} onChange={(e) => setReference(e.target.value)} aria-describedby="dr-ref-help" />
            <p id="dr-ref-help" className="help">
              Your ticket number; never the person's name or email.
            </p>
          </div>
          <div className="field">
            <label htmlFor="dr-received">Received at (your time zone)</label>
            <input id="dr-received" type="datetime-local" value={received} onChange={(e) => setReceived(e.target.value)} aria-describedby="dr-received-help" />
            <p id="dr-received-help" className="help">
              Empty: now. The deadline runs from here.
            </p>
          </div>
          {formError && (
            <p className="form-error" role="alert">
              {formError}
            </p>
          )}
          <div className="actions">
            <button type="button" onClick={() => (typeof draft === "string" ? setFormError(draft) : (setFormError(null), preview.mutate(draft)))} disabled={preview.isPending}>
              {preview.isPending ? "Previewing…" : "Preview scope"}
            </button>
            <button type="submit" className="primary" disabled={file.isPending || preview.isPending || !current}>
              {file.isPending ? "Filing…" : "File request"}
            </button>
          </div>
          {!current && <p className="help">Preview the scope first; the request is filed only after you have seen what it touches.</p>}
          {preview.error && <ErrorMessage error={preview.error} title="Could not preview the scope" />}
          {file.error && <ErrorMessage error={file.error} title="Could not file the request" />}
        </form>
        <div>{current ? <ScopePreview preview={current} /> : <Empty>The scope preview appears here.</Empty>}</div>
      </div>
      <BulkUpload />
    </section>
  );
}
