/**
 * In-browser checks of what the server signed: Ed25519 signatures (WebCrypto), SHA-256
 * digests and RFC 6962 / RFC 9162 Merkle inclusion proofs. Nothing here trusts the
 * server's own verdict; only its public key, which is fetched once and shown.
 */

const enc = new TextEncoder();

export function hex(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(s: string): Uint8Array<ArrayBuffer> {
  if (!/^([0-9a-f]{2})*$/i.test(s)) throw new TypeError(`not hex: ${s.slice(0, 20)}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function fromBase64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export async function sha256(data: Uint8Array<ArrayBuffer> | string): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function sha256Hex(data: Uint8Array<ArrayBuffer> | string): Promise<string> {
  return hex(await sha256(data));
}

export type PublicKey = { key: CryptoKey; keyId: string; pem: string };

/** An Ed25519 SPKI PEM; its id is the first 16 hex digits of SHA-256 over the raw 32 bytes. */
export async function importPublicKey(pem: string): Promise<PublicKey> {
  const body = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
  const der = fromBase64(body);
  if (der.length < 32) throw new TypeError("the public key is too short to be Ed25519");
  const key = await crypto.subtle.importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
  const keyId = (await sha256Hex(der.slice(der.length - 32))).slice(0, 16);
  return { key, keyId, pem };
}

/** Ed25519 over `context + "\n" + canonical JSON`, as core/signing.py signs. */
export async function verifySigned(key: CryptoKey, context: string, canonicalJson: string, signatureB64: string): Promise<boolean> {
  const message = enc.encode(`${context}\n${canonicalJson}`);
  return crypto.subtle.verify({ name: "Ed25519" }, key, fromBase64(signatureB64), message);
}

async function nodeHash(left: Uint8Array<ArrayBuffer>, right: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const buf = new Uint8Array(1 + left.length + right.length);
  buf[0] = 1;
  buf.set(left, 1);
  buf.set(right, 1 + left.length);
  return sha256(buf);
}

/** RFC 6962 leaf hash of an audit event: sha256(0x00 ‖ event hash bytes). */
export async function leafHash(eventHashHex: string): Promise<Uint8Array<ArrayBuffer>> {
  const h = fromHex(eventHashHex);
  const buf = new Uint8Array(1 + h.length);
  buf.set(h, 1);
  return sha256(buf);
}

/** The root an inclusion proof implies (RFC 9162 §2.1.3.2), or null if it cannot be one. */
export async function rootFromInclusion(leaf: Uint8Array<ArrayBuffer>, index: number, size: number, proofHex: string[]): Promise<string | null> {
  if (!(index >= 0 && index < size)) return null;
  const proof = proofHex.map(fromHex);
  if (proof.some((p) => p.length !== 32) || leaf.length !== 32) return null;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? hex(r) : null;
}
