// The phone's wallet: its device key, its credential, and the presentation QR text.
//
// A port of cardsys/wallet.py; the bytes are those documented in
// cardsys/formats/credential.py, and the end-to-end test checks them with verify.verify_qr:
//
//   presentation = 0x82 || bstr(credential) || bstr(proof)
//   proof        = 0x84 0x43 A1 01 26 0xA0 || bstr(payload) || 0x58 0x40 || r || s
//   payload      = {1: time, 2: SHA-256(credential)}
//   signed bytes = 0x84 0x6A "Signature1" 0x43 A1 01 26 0x40 || bstr(payload)
//
// The device key is a NON-EXTRACTABLE ECDSA P-256 CryptoKey: it signs, it is never exported;
// IndexedDB stores the CryptoKey object itself (structured clone), not its bytes. WebCrypto's
// ECDSA signature is raw r || s (64 bytes), as COSE wants it (RFC 9053 §2.1).
"use strict";

// --- deterministic CBOR (RFC 8949 §4.2.1), just what the wallet writes -----------------------

function head(major, value) {
  // Shortest form; our integers and lengths all fit 32 bits (times until 2106).
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError("CBOR argument out of range");
  }
  const m = major << 5;
  if (value < 24) return Uint8Array.of(m | value);
  if (value < 0x100) return Uint8Array.of(m | 24, value);
  if (value < 0x10000) return Uint8Array.of(m | 25, value >> 8, value & 0xff);
  return Uint8Array.of(m | 26, value >>> 24, (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff);
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

export const cbor = {
  uint: (n) => head(0, n),
  // -1 - n is encoded as n (major type 1)
  negative: (n) => head(1, -1 - n),
  bytes: (b) => concat(head(2, b.length), b),
  text: (s) => { const b = new TextEncoder().encode(s); return concat(head(3, b.length), b); },
  array: (items) => concat(head(4, items.length), ...items),
  // entries: [[encodedKey, encodedValue], ...]; sorted bytewise by encoded key (§4.2.1).
  map: (entries) => {
    const sorted = entries.slice().sort((a, b) => compareBytes(a[0], b[0]));
    return concat(head(5, sorted.length), ...sorted.flat());
  },
};

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

// --- COSE_Sign1 (RFC 9052 §4.2, §4.4) ---------------------------------------------------------

//: The proof's protected header, always these three bytes: {1: -7} (ES256, no kid).
export const PROOF_PROTECTED = Uint8Array.of(0xa1, 0x01, 0x26);
export const REFRESH_TYPE = "application/cardsys-refresh+cbor";
const ECDSA = { name: "ECDSA", hash: "SHA-256" };

export function sigStructure(protectedBytes, payload) {
  return cbor.array([cbor.text("Signature1"), cbor.bytes(protectedBytes), cbor.bytes(new Uint8Array(0)),
                     cbor.bytes(payload)]);
}

export async function sign1(payload, protectedBytes, key) {
  const signature = new Uint8Array(await crypto.subtle.sign(ECDSA, key, sigStructure(protectedBytes, payload)));
  if (signature.length !== 64) throw new Error("an ES256 signature is 64 bytes");
  // Untagged, empty unprotected header.
  return cbor.array([cbor.bytes(protectedBytes), cbor.map([]), cbor.bytes(payload), cbor.bytes(signature)]);
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// The proof payload: {1: time, 2: SHA-256(credential)}.
export function proofPayload(time, digest) {
  return cbor.map([[cbor.uint(1), cbor.uint(time)], [cbor.uint(2), cbor.bytes(digest)]]);
}

// The presentation body: [credential, proof].
export async function presentation(credential, key, time) {
  const proof = await sign1(proofPayload(time, await sha256(credential)), PROOF_PROTECTED, key);
  return cbor.array([cbor.bytes(credential), cbor.bytes(proof)]);
}

// A refresh request: COSE_Sign1 with protected {1: -7, 16: REFRESH_TYPE} over
// {1: time, 2: credential}.
export async function refreshRequest(credential, key, time) {
  const protectedBytes = cbor.map([[cbor.uint(1), cbor.negative(-7)], [cbor.uint(16), cbor.text(REFRESH_TYPE)]]);
  const payload = cbor.map([[cbor.uint(1), cbor.uint(time)], [cbor.uint(2), cbor.bytes(credential)]]);
  return sign1(payload, protectedBytes, key);
}

// --- Base45 (RFC 9285) and the QR text ---------------------------------------------------------

const B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

export function base45(bytes) {
  let out = "";
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    let n = bytes[i] * 256 + bytes[i + 1];
    const c = n % 45; n = (n - c) / 45;
    const d = n % 45; const e = (n - d) / 45;
    out += B45[c] + B45[d] + B45[e];
  }
  if (bytes.length % 2) {
    const n = bytes[bytes.length - 1];
    out += B45[n % 45] + B45[Math.floor(n / 45)];
  }
  return out;
}

export async function presentationText(credential, key, time) {
  return "SSP1:" + base45(await presentation(credential, key, time));
}

export function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

// --- the device key ----------------------------------------------------------------------------

// A new key pair whose private half can never leave the browser (extractable: false).
export async function newDeviceKey() {
  return crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
}

// The public key as the raw uncompressed point 0x04 || x || y (public keys always export).
export async function publicPoint(publicKey) {
  return new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));
}

export function toBase64url(bytes) {
  let binary = "";
  bytes.forEach((b) => { binary += String.fromCharCode(b); });
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromBase64url(text) {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

// --- IndexedDB: one card per phone ---------------------------------------------------------------

const DB_NAME = "cardsys-wallet";
const STORE = "card";
const RECORD = "current";

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function run(mode, action) {
  return openDb().then((db) => new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = action(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(request.result); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  }));
}

// record: {privateKey: CryptoKey, credential: Uint8Array, digitalCard, cardNumber, holder,
//          issuedAt, expiresAt (ISO text)}
export const store = {
  load: () => run("readonly", (s) => s.get(RECORD)),
  save: (record) => run("readwrite", (s) => s.put(record, RECORD)),
  clear: () => run("readwrite", (s) => s.delete(RECORD)),
};

// The record for what the server answered (provision or refresh).
export function recordOf(answer, privateKey) {
  return {
    privateKey,
    credential: fromBase64url(answer.credential),
    digitalCard: answer.digital_card,
    cardNumber: answer.card_number,
    holder: answer.holder,
    issuedAt: answer.issued_at,
    expiresAt: answer.expires_at,
  };
}

export async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Accept": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  let answer = null;
  try { answer = await response.json(); } catch (e) { answer = null; }
  return { status: response.status, ok: response.ok, answer };
}
