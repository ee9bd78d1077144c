import { describe, expect, it } from "vitest";

import { checkCheckpoint, checkSignature, CERTIFICATE_CONTEXT } from "./certificate";
import { canonical, parseRaw, without } from "./canonical";
import { hex, importPublicKey, leafHash, rootFromInclusion, sha256, sha256Hex } from "./crypto";

const enc = new TextEncoder();

async function keyPair() {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
  const pem = `-----BEGIN PUBLIC KEY-----\n${btoa(String.fromCharCode(...spki))}\n-----END PUBLIC KEY-----\n`;
  const sign = async (message: string) => btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, pair.privateKey, enc.encode(message)))));
  return { pem, sign, keyId: (await sha256Hex(spki.slice(spki.length - 32))).slice(0, 16) };
}

describe("canonical JSON from the response text", () => {
  it("sorts keys, drops whitespace and keeps Python's number digits", () => {
    const text = '{"b": 1.0, "a": {"z": [1e-05, -0.5, 10], "y": "é\\n\\"q\\""}, "c": null, "d": true}';
    expect(canonical(parseRaw(text))).toBe('{"a":{"y":"é\\n\\"q\\"","z":[1e-05,-0.5,10]},"b":1.0,"c":null,"d":true}');
    expect(canonical(without(parseRaw('{"x":1,"signature":{"v":2}}'), "signature"))).toBe('{"x":1}');
  });

  it("refuses text that is not JSON", () => {
    expect(() => parseRaw('{"a":1,}')).toThrow(SyntaxError);
    expect(() => parseRaw("[1 2]")).toThrow(SyntaxError);
  });
});

describe("certificate signature, checked in the browser", () => {
  it("accepts the signed document and rejects an edited one", async () => {
    const k = await keyPair();
    const body = '{"outcome":"erased","models":[{"evaluation":{"test_accuracy":1.0}}],"type":"expunge.deletion_certificate"}';
    const value = await k.sign(`${CERTIFICATE_CONTEXT}\n${canonical(parseRaw(body))}`);
    const signed = `{"type":"expunge.deletion_certificate","outcome":"erased","models":[{"evaluation":{"test_accuracy":1.0}}],"signature":{"algorithm":"Ed25519","context":"${CERTIFICATE_CONTEXT}","key_id":"${k.keyId}","value":"${value}"}}`;
    const key = await importPublicKey(k.pem);
    expect(key.keyId).toBe(k.keyId);
    expect(await checkSignature(signed, key)).toMatchObject({ ok: true });
    // 1.0 → 1 changes the signed bytes: a verifier that re-encodes parsed numbers would be wrong.
    expect((await checkSignature(signed.replace("1.0", "1"), key)).ok).toBe(false);
    expect(await checkSignature(signed.replace('"erased"', '"nothing_to_delete"'), key)).toMatchObject({ ok: false, detail: expect.stringContaining("altered or forged") });
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
