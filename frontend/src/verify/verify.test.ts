import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import { checkCheckpoint, checkSignature, CERTIFICATE_CONTEXT, CERTIFICATE_CONTEXT_V1, jcs } from "./certificate";
import { hex, importPublicKey, leafHash, rootFromInclusion, sha256, sha256Hex } from "./crypto";

type Fixture = { public_key_pem: string; sha256: string; served: string };
/** Certificates the Python side signed (tests/fixtures/certificates): v2 in RFC 8785 form,
 * and one from before it (v1), stored when certificates moved to RFC 8785. */
const fixture = (name: string): Fixture =>
  JSON.parse(readFileSync(`${process.cwd()}/../tests/fixtures/certificates/${name}.json`, "utf-8")) as Fixture;

const enc = new TextEncoder();

async function keyPair() {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  const pem = `-----BEGIN PUBLIC KEY-----\n${btoa(String.fromCharCode(...spki))}\n-----END PUBLIC KEY-----\n`;
  const sign = async (message: string) => btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, enc.encode(message)))));
  return { pem, sign, keyId: (await sha256Hex(spki.slice(spki.length - 32))).slice(0, 16) };
}

describe("RFC 8785 through canonicalize", () => {
  it("sorts keys, drops whitespace and writes numbers the ECMAScript way", () => {
    const value = JSON.parse('{"b": 1.0, "a": {"z": [1e-05, -0.5, 10, 1e21], "y": "é\\n\\"q\\""}, "c": null, "d": true}') as unknown;
    expect(jcs(value)).toBe('{"a":{"y":"é\\n\\"q\\"","z":[0.00001,-0.5,10,1e+21]},"b":1,"c":null,"d":true}');
    expect(() => jcs(NaN)).toThrow();
  });

  it("rebuilds the exact bytes the Python side signed and served (v2 fixture)", async () => {
    const v2 = fixture("v2");
    expect(jcs(JSON.parse(v2.served))).toBe(v2.served);
    expect(await sha256Hex(v2.served)).toBe(v2.sha256);
    const key = await importPublicKey(v2.public_key_pem);
    expect(await checkSignature(v2.served, key)).toMatchObject({ ok: true, detail: expect.stringContaining("valid Ed25519") });
    // Reformatted text still verifies (the parsed document is what is signed) ...
    expect((await checkSignature(JSON.stringify(JSON.parse(v2.served), null, 2), key)).ok).toBe(true);
    // ... an edited one does not.
    const edited = v2.served.replace('"outcome":"erased"', '"outcome":"nothing_to_delete"');
    expect(edited).not.toBe(v2.served);
    expect(await checkSignature(edited, key)).toMatchObject({ ok: false, detail: expect.stringContaining("altered or forged") });
  });

  it("says a v1 certificate whose numbers it cannot rebuild needs the CLI, never that it is valid", async () => {
    const v1 = fixture("v1");
    const key = await importPublicKey(v1.public_key_pem);
    expect((JSON.parse(v1.served) as { signature: { context: string } }).signature.context).toBe(CERTIFICATE_CONTEXT_V1);
    expect(await checkSignature(v1.served, key)).toMatchObject({ ok: false, skipped: true, detail: expect.stringContaining("expunge certificate verify") });
  });
});

describe("certificate signature, checked in the browser", () => {
  it("accepts the signed document and rejects an edited one", async () => {
    const k = await keyPair();
    const body = { outcome: "erased", models: [{ evaluation: { test_accuracy: 0.5 } }], type: "expunge.deletion_certificate" };
    const value = await k.sign(`${CERTIFICATE_CONTEXT}\n${jcs(body)}`);
    const signed = JSON.stringify({ ...body, signature: { algorithm: "Ed25519", context: CERTIFICATE_CONTEXT, key_id: k.keyId, value } });
    const key = await importPublicKey(k.pem);
    expect(key.keyId).toBe(k.keyId);
    expect(await checkSignature(signed, key)).toMatchObject({ ok: true });
    expect((await checkSignature(signed.replace("0.5", "0.25"), key)).ok).toBe(false);
    expect(await checkSignature(signed.replace('"erased"', '"nothing_to_delete"'), key)).toMatchObject({ ok: false, detail: expect.stringContaining("altered or forged") });
    // The context binds the form: the same signature relabelled v1 is not valid either.
    const relabelled = signed.replace(CERTIFICATE_CONTEXT, CERTIFICATE_CONTEXT_V1);
    expect((await checkSignature(relabelled, key)).ok).toBe(false);
    const other = await importPublicKey((await keyPair()).pem);
    expect((await checkSignature(signed, other)).detail).toContain("signed by key");
  });

  it("checks a checkpoint's signature over its canonical fields", async () => {
    const k = await keyPair();
    const cp = { id: 1, tree_size: 7, root_hash: "ab".repeat(32), at: "2026-11-28T20:15:03.123456+00:00", key_id: k.keyId, signature: "" };
    cp.signature = await k.sign(`expunge.audit_checkpoint.v1\n{"at":"${cp.at}","key_id":"${k.keyId}","root_hash":"${cp.root_hash}","tree_size":7}`);
    const key = await importPublicKey(k.pem);
    expect((await checkCheckpoint(cp, key)).ok).toBe(true);
    expect((await checkCheckpoint({ ...cp, tree_size: 8 }, key)).ok).toBe(false);
  });
});

/** A reference RFC 6962 tree, to check the proof verifier against every position. */
async function mth(leaves: Uint8Array<ArrayBuffer>[]): Promise<Uint8Array<ArrayBuffer>> {
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  const l = await mth(leaves.slice(0, k));
  const r = await mth(leaves.slice(k));
  const buf = new Uint8Array(65);
  buf[0] = 1;
  buf.set(l, 1);
  buf.set(r, 33);
  return sha256(buf);
}

async function path(m: number, leaves: Uint8Array<ArrayBuffer>[]): Promise<string[]> {
  if (leaves.length === 1) return [];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return m < k ? [...(await path(m, leaves.slice(0, k))), hex(await mth(leaves.slice(k)))] : [...(await path(m - k, leaves.slice(k))), hex(await mth(leaves.slice(0, k)))];
}

describe("Merkle inclusion proofs", () => {
  it("lead to the root for every position of trees of 1 to 9 events, and only there", async () => {
    for (let n = 1; n <= 9; n++) {
      const events = Array.from({ length: n }, (_, i) => `${i}`.padStart(64, "0"));
      const leaves = await Promise.all(events.map(leafHash));
      const root = hex(await mth(leaves));
      for (let i = 0; i < n; i++) {
        const proof = await path(i, leaves);
        expect(await rootFromInclusion(leaves[i], i, n, proof)).toBe(root);
        if (n > 1) expect(await rootFromInclusion(leaves[(i + 1) % n], i, n, proof)).not.toBe(root);
      }
      expect(await rootFromInclusion(leaves[0], n, n, [])).toBeNull();
    }
  });
});
