import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { Link, useSearchParams } from "react-router";

import { api, unwrap } from "../api/client";
import { toApiError } from "../api/errors";
import type { AuditEvent, Checkpoint } from "../api/types";
import { useCan } from "../auth";
import { Mono, ShortId } from "../components/Badges";
import { Facts } from "../components/KeyValue";
import { Pager, useCursorPager } from "../components/Pager";
import { Empty, ErrorMessage, QueryView } from "../components/States";
import { Time } from "../components/Time";
import { checkCheckpoint, checkpointCovering } from "../verify/certificate";
import { importPublicKey, leafHash, rootFromInclusion } from "../verify/crypto";

const ENTITY_TYPES = ["deletion_request", "job", "model", "model_version", "dataset", "api_key"];

/** Where an event's entity lives in the dashboard, if it has a page. */
function entityLink(e: AuditEvent): ReactNode {
  const to =
    e.entity_type === "deletion_request" ? `/deletion-requests/${e.entity_id}` : e.entity_type === "job" ? `/jobs/${e.entity_id}` : e.entity_type === "model" ? `/models/${e.entity_id}` : e.entity_type === "model_version" ? `/versions/${e.entity_id}` : e.entity_type === "dataset" ? `/datasets/${e.entity_id}` : null;
  const id = <ShortId id={e.entity_id} />;
  return to ? <Link to={to}>{id}</Link> : id;
}

/** `key: value` pairs; long values (hashes, ids, lists) shortened, in full on hover. */
function PayloadSummary({ payload }: { payload: Record<string, unknown> }): ReactNode {
  const entries = Object.entries(payload);
  if (!entries.length) return <span className="muted">—</span>;
  return (
    <>
      {entries.map(([k, v], i) => {
        const text = typeof v === "string" ? v : JSON.stringify(v);
        const short = text.length > 28 ? `${text.slice(0, 12)}…${text.slice(-8)}` : text;
        return (
          <span key={k} title={text.length > 28 ? text : undefined}>
            {i > 0 && " · "}
            <span className="muted">{k}:</span> {short}
          </span>
        );
      })}
    </>
  );
}

export function EventTable({ events }: { events: AuditEvent[] }): ReactNode {
  if (!events.length) return <Empty>No events match these filters.</Empty>;
  return (
    <table className="table compact" data-testid="audit-events">
      <caption className="sr-only">Audit events</caption>
      <thead>
        <tr>
          <th scope="col">#</th>
          <th scope="col">Time</th>
          <th scope="col">Action</th>
          <th scope="col">Entity</th>
          <th scope="col">Actor</th>
          <th scope="col">Details</th>
          <th scope="col">Hash</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr key={e.seq}>
            <td className="num">{e.seq}</td>
            <td>
              <Time value={e.at} />
            </td>
            <td className="nowrap">
              <code>{e.action}</code>
            </td>
            <td>
              <span className="muted small">{e.entity_type}</span> {entityLink(e)}
            </td>
            <td>{e.actor.length > 16 ? <ShortId id={e.actor} /> : e.actor}</td>
            <td className="small payload">{e.payload_raw ? <span className="bad-text">unreadable payload (run verify)</span> : <PayloadSummary payload={e.payload ?? {}} />}</td>
            <td>
              <ShortId id={e.hash} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function VerifyChain(): ReactNode {
  const verify = useMutation({ mutationFn: () => unwrap(api.GET("/api/v1/audit/verify")) });
  return (
    <section aria-labelledby="verify-h">
      <h2 id="verify-h">Verify the chain</h2>
      <p className="muted">Recomputes every event hash, every link and the Merkle root at every signed checkpoint, with every signature.</p>
      <button type="button" className="primary" disabled={verify.isPending} onClick={() => verify.mutate()}>
        {verify.isPending ? "Verifying…" : "Verify chain"}
      </button>
      {verify.error && <ErrorMessage error={verify.error} title="Could not verify" />}
      {verify.data && (
        <div className={`verify-result ${verify.data.ok ? "ok" : "bad"}`} role="status" data-testid="chain-result">
          <p>
            <strong>{verify.data.ok ? "✓ The log is intact" : `✗ Not intact: first bad position ${verify.data.first_bad_seq ?? "?"}`}</strong>
          </p>
          <Facts
            items={[
              ["Result", verify.data.reason],
              ["Events", String(verify.data.size)],
              ["First bad position", verify.data.first_bad_seq === null ? "none" : String(verify.data.first_bad_seq)],
              ["Covered by signed checkpoints", `${verify.data.signed_size} events (${verify.data.checkpoints_verified} checkpoints verified)`],
              ["Root", verify.data.root_hash ? <Mono>{verify.data.root_hash}</Mono> : null],
            ]}
          />
        </div>
      )}
    </section>
  );
}

function usePublicKey() {
  return useQuery({
    queryKey: ["public-key"],
    queryFn: async () => importPublicKey(String(await unwrap(api.GET("/api/v1/audit/public-key", { parseAs: "text" })))),
    staleTime: Infinity,
  });
}

function CheckpointRow({ cp }: { cp: Checkpoint }): ReactNode {
  const key = usePublicKey();
  const check = useQuery({ queryKey: ["checkpoint-check", cp.id, key.data?.keyId], queryFn: () => checkCheckpoint(cp, key.data!), enabled: Boolean(key.data), staleTime: Infinity });
  return (
    <tr>
      <td className="num">{cp.id}</td>
      <td className="num">{cp.tree_size}</td>
      <td>
        <Time value={cp.at} />
      </td>
      <td>
        <ShortId id={cp.root_hash} />
      </td>
      <td>
        <Mono>{cp.key_id}</Mono>
      </td>
      <td>{check.data ? <span className={check.data.ok ? "ok-text" : "bad-text"}>{check.data.ok ? "✓ valid" : `✗ ${check.data.detail}`}</span> : key.error ? <span className="bad-text">no key</span> : <span className="muted">checking…</span>}</td>
    </tr>
  );
}

function Checkpoints(): ReactNode {
  const queryClient = useQueryClient();
  const checkpoints = useQuery({ queryKey: ["checkpoints"], queryFn: () => unwrap(api.GET("/api/v1/audit/checkpoints", { params: { query: { limit: 20 } } })) });
  const sign = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/audit/checkpoints")),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ["checkpoints"] }),
  });
  return (
    <section aria-labelledby="cp-h">
      <div className="page-head">
        <h2 id="cp-h">Signed checkpoints</h2>
        <button type="button" disabled={sign.isPending} onClick={() => sign.mutate()}>
          Sign a checkpoint now
        </button>
      </div>
      {sign.error && <ErrorMessage error={sign.error} title="Could not sign a checkpoint" />}
      <QueryView query={checkpoints} what="checkpoints">
        {(page) =>
          page.data.length ? (
            <table className="table compact" data-testid="checkpoints">
              <caption className="sr-only">Signed checkpoints, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Id</th>
                  <th scope="col">Events</th>
                  <th scope="col">Signed</th>
                  <th scope="col">Root</th>
                  <th scope="col">Key</th>
                  <th scope="col">Signature (checked here)</th>
                </tr>
              </thead>
              <tbody>
                {page.data.map((cp) => (
                  <CheckpointRow key={cp.id} cp={cp} />
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>No checkpoint signed yet: events are protected by the hash chain alone until one is.</Empty>
          )
        }
      </QueryView>
    </section>
  );
}

type ProofResult = { requestId: string; seq: number; cp: Checkpoint; proof: string[]; ok: boolean; signature: { ok: boolean; detail: string } };

function InclusionForCertificate({ initial }: { initial: string }): ReactNode {
  const [requestId, setRequestId] = useState(initial);
  const key = usePublicKey();
  const prove = useMutation({
    mutationFn: async (id: string): Promise<ProofResult> => {
      const { response, error } = await api.GET("/api/v1/deletion-requests/{request_id}/certificate", { params: { path: { request_id: id } }, parseAs: "text" });
      if (!response.ok) {
        const body: unknown = typeof error === "string" ? JSON.parse(error || "null") : error;
        throw toApiError(body, response);
      }
      const seq = Number(response.headers.get("X-Audit-Seq"));
      const cp = await checkpointCovering(seq);
      const proof = await unwrap(api.GET("/api/v1/audit/proofs/inclusion", { params: { query: { seq, tree_size: cp.tree_size } } }));
      const root = await rootFromInclusion(await leafHash(proof.event_hash), seq, cp.tree_size, proof.proof);
      const publicKey = key.data ?? (await key.refetch()).data;
      const signature = publicKey ? await checkCheckpoint(cp, publicKey) : { ok: false, detail: "no public key" };
      return { requestId: id, seq, cp, proof: proof.proof, ok: root === cp.root_hash, signature };
    },
  });
  return (
    <section aria-labelledby="proof-h">
      <h2 id="proof-h">Inclusion proof for a certificate</h2>
      <form
        className="filters"
        aria-label="Prove a certificate is in the log"
        onSubmit={(e) => {
          e.preventDefault();
          if (requestId.trim()) prove.mutate(requestId.trim());
        }}
      >
        <label>
          Deletion request id
          <input value={requestId} onChange={(e) => setRequestId(e.target.value)} placeholder="dr_…" />
        </label>
        <button type="submit" disabled={!requestId.trim() || prove.isPending}>
          {prove.isPending ? "Proving…" : "Get proof"}
        </button>
      </form>
      {prove.error && <ErrorMessage error={prove.error} title="Could not get a proof" />}
      {prove.data && (
        <div className={`verify-result ${prove.data.ok && prove.data.signature.ok ? "ok" : "bad"}`} role="status" data-testid="proof-result">
          <p>
            <strong>{prove.data.ok && prove.data.signature.ok ? "✓ Proven" : "✗ Not proven"}</strong>: the certificate's anchor event #{prove.data.seq} {prove.data.ok ? "is" : "is NOT shown to be"} in the log of {prove.data.cp.tree_size} events signed at <Time value={prove.data.cp.at} /> (checkpoint signature: {prove.data.signature.detail}).
          </p>
          <Facts
            items={[
              ["Request", <Link to={`/deletion-requests/${prove.data.requestId}`}>{prove.data.requestId}</Link>],
              ["Root", <Mono>{prove.data.cp.root_hash}</Mono>],
              [
                `Audit path (${prove.data.proof.length})`,
                <ol className="plain mono small">
                  {prove.data.proof.map((h, i) => (
                    <li key={i}>{h}</li>
                  ))}
                </ol>,
              ],
            ]}
          />
        </div>
      )}
    </section>
  );
}

export function Audit(): ReactNode {
  const canAudit = useCan("audit");
  const [params, setParams] = useSearchParams();
  const filters = {
    action: params.get("action") || undefined,
    entity_type: params.get("entity_type") || undefined,
    entity_id: params.get("entity_id") || undefined,
  };
  const order = params.get("order") === "asc" ? "asc" : "desc";
  const pager = useCursorPager(JSON.stringify({ ...filters, order }));
  const events = useQuery({
    queryKey: ["audit-events", filters, order, pager.cursor],
    queryFn: () => unwrap(api.GET("/api/v1/audit/events", { params: { query: { ...filters, order, cursor: pager.cursor === undefined ? undefined : Number(pager.cursor), limit: 50 } } })),
    placeholderData: keepPreviousData,
    enabled: canAudit,
  });
  const [draft, setDraft] = useState(filters);
  if (!canAudit) {
    return (
      <section>
        <h1>Audit log</h1>
        <Empty>Reading the audit log needs the compliance or admin role.</Empty>
      </section>
    );
  }
  const apply = (next: typeof filters, nextOrder = order) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(next)) if (v) p.set(k, v);
    if (nextOrder === "asc") p.set("order", "asc");
    setParams(p, { replace: true });
  };
  return (
    <section>
      <div className="page-head">
        <h1>Audit log</h1>
      </div>
      <form
        className="filters"
        role="search"
        aria-label="Filter audit events"
        onSubmit={(e) => {
          e.preventDefault();
          apply(draft);
        }}
      >
        <label>
          Action
          <input value={draft.action ?? ""} onChange={(e) => setDraft({ ...draft, action: e.target.value || undefined })} placeholder="deletion_request.approved" />
        </label>
        <label>
          Entity type
          <select value={draft.entity_type ?? ""} onChange={(e) => setDraft({ ...draft, entity_type: e.target.value || undefined })}>
            <option value="">any</option>
            {ENTITY_TYPES.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Entity id
          <input value={draft.entity_id ?? ""} onChange={(e) => setDraft({ ...draft, entity_id: e.target.value || undefined })} />
        </label>
        <label>
          Order
          <select value={order} onChange={(e) => apply(filters, e.target.value)}>
            <option value="desc">newest first</option>
            <option value="asc">oldest first</option>
          </select>
        </label>
        <button type="submit">Apply</button>
        {(filters.action || filters.entity_type || filters.entity_id) && (
          <button
            type="button"
            onClick={() => {
              setDraft({ action: undefined, entity_type: undefined, entity_id: undefined });
              apply({ action: undefined, entity_type: undefined, entity_id: undefined });
            }}
          >
            Clear filters
          </button>
        )}
      </form>
      <QueryView query={events} what="audit events">
        {(page) => (
          <>
            <EventTable events={page.data} />
            <Pager label="Audit events" page={pager.page} nextCursor={page.next_cursor} onNext={pager.next} onPrev={pager.prev} />
          </>
        )}
      </QueryView>
      <div className="grid-2">
        <VerifyChain />
        <InclusionForCertificate initial={params.get("request") ?? ""} />
      </div>
      <Checkpoints />
    </section>
  );
}
