/**
 * Check a deletion certificate in the browser, step by step, the way
 * `expunge certificate verify` does offline: the Ed25519 signature with the deployment's
 * public key; its digest against the audit event that anchors it; that event's hash;
 * and inclusion proofs of that event and of every step the certificate lists, up to a
 * signed checkpoint whose own signature is checked too.
 */
import canonicalize from "canonicalize";

import { api, unwrap } from "../api/client";
import type { Checkpoint } from "../api/types";
import { importPublicKey, leafHash, rootFromInclusion, sha256Hex, verifySigned, type PublicKey } from "./crypto";

/** Certificates are signed over their RFC 8785 (JCS) form, which `canonicalize` rebuilds. */
export const CERTIFICATE_CONTEXT = "expunge.certificate.v2";
/** Certificates signed before v2 used Python's sorted compact json.dumps: the same bytes as
 * RFC 8785 unless a number is written differently (1.0, 1e-05). */
export const CERTIFICATE_CONTEXT_V1 = "expunge.certificate.v1";
export const CHECKPOINT_CONTEXT = "expunge.audit_checkpoint.v1";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** RFC 8785 text of a JSON value (throws on what JCS cannot encode). */
export function jcs(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError("not a JSON value");
  return text;
}

/** One step of a verification; `skipped`: not checked (e.g. the role may not read the log). */
export type Check = { name: string; ok: boolean; detail: string; skipped?: boolean };

export type CertificateEvidence = {
  text: string; // the certificate exactly as the API sent it: its canonical bytes
  sha256Header: string | null; // X-Certificate-SHA256
  auditSeq: number | null; // X-Audit-Seq
};

type SignatureBlock = { algorithm?: string; context?: string; key_id?: string; value?: string };

export async function checkSignature(text: string, publicKey: PublicKey): Promise<Check> {
  const name = "Signature";
  try {
    const parsed = JSON.parse(text) as Json;
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return { name, ok: false, detail: "the certificate is not a JSON object" };
    const { signature, ...body } = parsed;
    const block = signature as SignatureBlock | null | undefined;
    if (!block || typeof block !== "object") return { name, ok: false, detail: "the certificate has no signature" };
    if (block.algorithm !== "Ed25519") return { name, ok: false, detail: `unsupported algorithm ${String(block.algorithm)}` };
    const v1 = block.context === CERTIFICATE_CONTEXT_V1;
    if (block.context !== CERTIFICATE_CONTEXT && !v1) return { name, ok: false, detail: `signed for ${String(block.context)}, not ${CERTIFICATE_CONTEXT}` };
    if (block.key_id !== publicKey.keyId) {
      return { name, ok: false, detail: `signed by key ${String(block.key_id)}, but the deployment's public key is ${publicKey.keyId}` };
    }
    const ok = await verifySigned(publicKey.key, String(block.context), jcs(body), block.value ?? "");
    if (ok) return { name, ok, detail: `valid Ed25519 signature by key ${publicKey.keyId}` };
    if (v1) {
      // A v1 document whose numbers Python wrote differently cannot be rebuilt here.
      return {
        name,
        ok: false,
        skipped: true,
        detail: "signed in the v1 form (before RFC 8785), which the browser cannot always rebuild: check it with `expunge certificate verify`",
      };
    }
    return { name, ok, detail: "the signature does not match the document (it was altered or forged)" };
  } catch (error) {
    return { name, ok: false, detail: `could not check: ${error instanceof Error ? error.message : String(error)}` };
  }
}

export async function checkCheckpoint(cp: Checkpoint, publicKey: PublicKey): Promise<Check> {
  const name = `Checkpoint of ${cp.tree_size} events`;
  if (cp.key_id !== publicKey.keyId) return { name, ok: false, detail: `signed by key ${cp.key_id}, not the deployment's ${publicKey.keyId}` };
  // Checkpoints keep the log's own form; for their integer and string fields it is the
  // same bytes as RFC 8785.
  const doc = { tree_size: cp.tree_size, root_hash: cp.root_hash, at: cp.at, key_id: cp.key_id };
  const ok = await verifySigned(publicKey.key, CHECKPOINT_CONTEXT, jcs(doc), cp.signature).catch(() => false);
  return { name, ok, detail: ok ? `signature valid; root ${cp.root_hash.slice(0, 16)}…` : "the checkpoint's signature is invalid" };
}

/** Whether event `seq` with hash `eventHash` is in the signed tree of checkpoint `cp`. */
export async function checkInclusion(seq: number, eventHash: string, cp: Checkpoint): Promise<boolean> {
  const proof = await unwrap(api.GET("/api/v1/audit/proofs/inclusion", { params: { query: { seq, tree_size: cp.tree_size } } }));
  if (proof.event_hash !== eventHash || proof.tree_size !== cp.tree_size) return false;
  return (await rootFromInclusion(await leafHash(eventHash), seq, cp.tree_size, proof.proof)) === cp.root_hash;
}

/** A signed checkpoint covering position `seq`: the newest, or a new one signed now. */
export async function checkpointCovering(seq: number): Promise<Checkpoint> {
  const latest = (await unwrap(api.GET("/api/v1/audit/checkpoints", { params: { query: { limit: 1 } } }))).data[0];
  if (latest && latest.tree_size > seq) return latest;
  return unwrap(api.POST("/api/v1/audit/checkpoints"));
}

type AuditEventJson = { [key: string]: Json };

/** The anchor event, its hash recomputed from its fields. Audit events keep the log's own
 * form, which for a certificate_issued event (integers and strings) is the same bytes as
 * RFC 8785. */
async function anchorEvent(requestId: string, seq: number): Promise<{ hash: string; recomputed: string; certificateSha256: string | undefined } | null> {
  const page = await unwrap(
    api.GET("/api/v1/audit/events", {
      params: { query: { entity_type: "deletion_request", entity_id: requestId, action: "deletion_request.certificate_issued", limit: 50 } },
    }),
  );
  const event = (page.data as unknown as AuditEventJson[]).find((e) => e.seq === seq);
  if (!event) return null;
  const fields = ["seq", "at", "actor", "action", "entity_type", "entity_id", "payload", "prev_hash"];
  const body = Object.fromEntries(fields.map((f) => [f, event[f] ?? null]));
  const payload = event.payload as { certificate_sha256?: unknown } | null;
  return {
    hash: typeof event.hash === "string" ? event.hash : "",
    recomputed: await sha256Hex(jcs(body)),
    certificateSha256: typeof payload?.certificate_sha256 === "string" ? payload.certificate_sha256 : undefined,
  };
}

/**
 * Every check, in order. `audit` false (a role that may not read the log): the signature
 * and digest only, and a line saying why the log was not consulted.
 */
export async function verifyCertificate(requestId: string, evidence: CertificateEvidence, publicKeyPem: string, audit: boolean): Promise<Check[]> {
  const checks: Check[] = [];
  const publicKey = await importPublicKey(publicKeyPem);
  checks.push(await checkSignature(evidence.text, publicKey));
  // The API serves the canonical bytes themselves: their sha256 is the digest it logged.
  const digest = await sha256Hex(evidence.text);
  if (evidence.sha256Header) {
    checks.push({
      name: "Digest",
      ok: digest === evidence.sha256Header,
      detail: digest === evidence.sha256Header ? `sha256 ${digest}` : `computed ${digest}, the API says ${evidence.sha256Header}`,
    });
  }
  if (!audit) {
    checks.push({ name: "Audit log", ok: false, skipped: true, detail: "not checked: reading the audit log needs the admin or compliance role" });
    return checks;
  }
  const seq = evidence.auditSeq;
  if (seq === null || Number.isNaN(seq)) {
    checks.push({ name: "Audit anchor", ok: false, detail: "the API did not say which audit event anchors this certificate" });
    return checks;
  }
  const event = await anchorEvent(requestId, seq);
  if (!event) {
    checks.push({ name: "Audit anchor", ok: false, detail: `no certificate_issued event at position ${seq} for this request` });
    return checks;
  }
  const anchored = event.certificateSha256 === digest && event.recomputed === event.hash;
  checks.push({
    name: "Audit anchor",
    ok: anchored,
    detail: anchored
      ? `event ${seq} records this certificate's digest, and its hash recomputes`
      : event.recomputed !== event.hash
        ? `event ${seq}'s hash does not match its contents`
        : `event ${seq} records digest ${String(event.certificateSha256)}, not ${digest}`,
  });
  const cp = await checkpointCovering(seq);
  checks.push(await checkCheckpoint(cp, publicKey));
  const anchorIn = await checkInclusion(seq, event.hash, cp);
  checks.push({ name: "Anchor inclusion", ok: anchorIn, detail: anchorIn ? `event ${seq} is in the signed log of ${cp.tree_size} events` : `event ${seq}'s proof does not lead to the checkpoint's root` });
  const steps = (JSON.parse(evidence.text) as { audit_steps?: { seq: number; hash: string }[] }).audit_steps ?? [];
  const results = await Promise.all(steps.map((s) => checkInclusion(s.seq, s.hash, cp).catch(() => false)));
  const bad = steps.filter((_, i) => !results[i]).map((s) => s.seq);
  checks.push({
    name: "Steps in the log",
    ok: bad.length === 0,
    detail: bad.length === 0 ? `all ${steps.length} audit steps the certificate lists are proven in the signed log` : `not proven: position(s) ${bad.join(", ")}`,
  });
  return checks;
}
