/**
 * Check a deletion certificate in the browser, step by step, the way
 * `expunge certificate verify` does offline: the Ed25519 signature with the deployment's
 * public key; its digest against the audit event that anchors it; that event's hash;
 * and inclusion proofs of that event and of every step the certificate lists, up to a
 * signed checkpoint whose own signature is checked too.
 */
import { api, unwrap } from "../api/client";
import type { Checkpoint } from "../api/types";
import { canonical, member, parseRaw, rawObject, without, type Raw } from "./canonical";
import { importPublicKey, leafHash, rootFromInclusion, sha256Hex, verifySigned, type PublicKey } from "./crypto";

export const CERTIFICATE_CONTEXT = "expunge.certificate.v1";
export const CHECKPOINT_CONTEXT = "expunge.audit_checkpoint.v1";

/** One step of a verification; `skipped`: not checked (e.g. the role may not read the log). */
export type Check = { name: string; ok: boolean; detail: string; skipped?: boolean };

export type CertificateEvidence = {
  text: string; // the certificate exactly as the API sent it
  sha256Header: string | null; // X-Certificate-SHA256
  auditSeq: number | null; // X-Audit-Seq
};

type SignatureBlock = { algorithm?: string; context?: string; key_id?: string; value?: string };

export async function checkSignature(text: string, publicKey: PublicKey): Promise<Check> {
  const name = "Signature";
  try {
    const raw = parseRaw(text);
    const block = JSON.parse(canonical(member(raw, "signature") ?? null)) as SignatureBlock | null;
    if (!block || typeof block !== "object") return { name, ok: false, detail: "the certificate has no signature" };
    if (block.algorithm !== "Ed25519") return { name, ok: false, detail: `unsupported algorithm ${String(block.algorithm)}` };
    if (block.context !== CERTIFICATE_CONTEXT) return { name, ok: false, detail: `signed for ${String(block.context)}, not ${CERTIFICATE_CONTEXT}` };
    if (block.key_id !== publicKey.keyId) {
      return { name, ok: false, detail: `signed by key ${String(block.key_id)}, but the deployment's public key is ${publicKey.keyId}` };
    }
    const ok = await verifySigned(publicKey.key, CERTIFICATE_CONTEXT, canonical(without(raw, "signature")), block.value ?? "");
    return ok
      ? { name, ok, detail: `valid Ed25519 signature by key ${publicKey.keyId}` }
      : { name, ok, detail: "the signature does not match the document (it was altered or forged)" };
  } catch (error) {
    return { name, ok: false, detail: `could not check: ${error instanceof Error ? error.message : String(error)}` };
  }
}

export async function checkCheckpoint(cp: Checkpoint, publicKey: PublicKey): Promise<Check> {
  const name = `Checkpoint of ${cp.tree_size} events`;
  if (cp.key_id !== publicKey.keyId) return { name, ok: false, detail: `signed by key ${cp.key_id}, not the deployment's ${publicKey.keyId}` };
  const doc = rawObject({ tree_size: { num: String(cp.tree_size) }, root_hash: cp.root_hash, at: cp.at, key_id: cp.key_id });
  const ok = await verifySigned(publicKey.key, CHECKPOINT_CONTEXT, canonical(doc), cp.signature).catch(() => false);
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

function rawString(v: Raw | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** The anchor event, its hash recomputed from its fields (exact text, as logged). */
async function anchorEvent(requestId: string, seq: number): Promise<{ hash: string; recomputed: string; certificateSha256: string | undefined } | null> {
  const { data } = await api.GET("/api/v1/audit/events", {
    params: { query: { entity_type: "deletion_request", entity_id: requestId, action: "deletion_request.certificate_issued", limit: 50 } },
    parseAs: "text",
  });
  if (typeof data !== "string") return null;
  const list = member(parseRaw(data), "data");
  const event = (Array.isArray(list) ? list : []).find((e) => {
    const s = member(e, "seq");
    return typeof s === "object" && s !== null && "num" in s && s.num === String(seq);
  });
  if (!event) return null;
  const fields = ["seq", "at", "actor", "action", "entity_type", "entity_id", "payload", "prev_hash"];
  const body = rawObject(Object.fromEntries(fields.map((f) => [f, member(event, f) ?? null])));
  const payload = member(event, "payload");
  return {
    hash: rawString(member(event, "hash")) ?? "",
    recomputed: await sha256Hex(canonical(body)),
    certificateSha256: payload ? rawString(member(payload, "certificate_sha256")) : undefined,
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
  const digest = await sha256Hex(canonical(parseRaw(evidence.text)));
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
