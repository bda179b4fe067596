// The browser gateway's two messages, shared by the page (bundled for browsers) and the enclave.
// WebCrypto and @hpke/core only: no Node built-in. Specified byte by byte in docs/formats.md
// ("Browser gateway"); test/docs/formats.test.ts checks the constants below against the doc.
import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Application `info` of the sealed request (HPKE seal, after the seal's own label and key hash). */
export const REQUEST_INFO = 'nitro-enclave-sdk/browser-gateway/request v1';
/** Start of the sealed response's HPKE `info`, then 0x00 and SHA-256 of the sealed request. */
export const RESPONSE_INFO_LABEL = 'nitro-enclave-sdk/browser-gateway/response v1';
/** First byte of a sealed response. */
export const RESPONSE_VERSION = 1;
/** `v` of both plaintexts. */
export const PLAINTEXT_VERSION = 1;
/** The workflow id is this prefix and the request id: the enclave refuses any other. */
export const WORKFLOW_ID_PREFIX = 'browser-';
/** Request ids: 16 random bytes, lowercase hex. */
export const REQUEST_ID = /^[0-9a-f]{32}$/;
/** The response key and `enc`: an uncompressed P-256 point. */
export const P256_POINT_BYTES = 65;
export const LIMITS = { questionChars: 2000, sources: 16, sourceChars: 200 };

const responseSuite = () => new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });

export class GatewayFormatError extends Error {
  constructor(message) {
    super(message);
    this.name = 'GatewayFormatError';
    this.code = 'E_GATEWAY_FORMAT';
  }
}

export const base64url = {
  encode(bytes) {
    let text = '';
    for (const b of bytes) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
  decode(text) {
    if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text)) throw new GatewayFormatError('not base64url');
    const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  },
};

export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

function responseInfo(requestHash) {
  const label = encoder.encode(RESPONSE_INFO_LABEL);
  const out = new Uint8Array(label.length + 1 + requestHash.length);
  out.set(label, 0);
  out.set(requestHash, label.length + 1);
  return out;
}

function exactKeys(value, keys, what) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new GatewayFormatError(`${what} must be a JSON object`);
  const have = Object.keys(value).sort().join(',');
  if (have !== [...keys].sort().join(',')) throw new GatewayFormatError(`${what} must have exactly the members ${keys.join(', ')}`);
}

/** The request plaintext: UTF-8 JSON `{ v, requestId, responseKey, question, sources }`. */
export function encodeRequest({ requestId, responseKey, question, sources }) {
  return encoder.encode(JSON.stringify({ v: PLAINTEXT_VERSION, requestId, responseKey: base64url.encode(responseKey), question, sources }));
}

/** Parses and checks a request plaintext (inside the enclave, after HPKE authenticated it). */
export function parseRequest(plaintext) {
  let value;
  try {
    value = JSON.parse(decoder.decode(plaintext));
  } catch {
    throw new GatewayFormatError('the request is not UTF-8 JSON');
  }
  exactKeys(value, ['v', 'requestId', 'responseKey', 'question', 'sources'], 'the request');
  if (value.v !== PLAINTEXT_VERSION) throw new GatewayFormatError(`the request has v ${value.v}; this reads ${PLAINTEXT_VERSION}`);
  if (typeof value.requestId !== 'string' || !REQUEST_ID.test(value.requestId)) throw new GatewayFormatError('requestId must be 32 lowercase hex digits');
  const responseKey = base64url.decode(value.responseKey);
  if (responseKey.length !== P256_POINT_BYTES || responseKey[0] !== 0x04) throw new GatewayFormatError('responseKey must be an uncompressed P-256 point (65 bytes)');
  if (typeof value.question !== 'string' || value.question.length === 0 || value.question.length > LIMITS.questionChars) throw new GatewayFormatError(`question must be 1..${LIMITS.questionChars} characters`);
  if (!Array.isArray(value.sources) || value.sources.length === 0 || value.sources.length > LIMITS.sources || value.sources.some((s) => typeof s !== 'string' || !s || s.length > LIMITS.sourceChars)) {
    throw new GatewayFormatError(`sources must be 1..${LIMITS.sources} non-empty strings of at most ${LIMITS.sourceChars} characters`);
  }
  return { requestId: value.requestId, responseKey, question: value.question, sources: value.sources };
}

/**
 * Seals the response (inside the enclave) to the browser's `responseKey`:
 * `0x01 ‖ enc (65) ‖ ciphertext`, aad = version ‖ enc, info = label ‖ 0x00 ‖ SHA-256(sealed request).
 */
export async function sealResponse({ responseKey, requestHash, requestId, chainId, report }) {
  const suite = responseSuite();
  const recipientPublicKey = await suite.kem.deserializePublicKey(responseKey);
  const sender = await suite.createSenderContext({ recipientPublicKey, info: responseInfo(requestHash) });
  const header = new Uint8Array(1 + P256_POINT_BYTES);
  header[0] = RESPONSE_VERSION;
  header.set(new Uint8Array(sender.enc), 1);
  const plaintext = encoder.encode(JSON.stringify({ v: PLAINTEXT_VERSION, requestId, chainId, report }));
  try {
    const ciphertext = new Uint8Array(await sender.seal(plaintext, header));
    const out = new Uint8Array(header.length + ciphertext.length);
    out.set(header, 0);
    out.set(ciphertext, header.length);
    return out;
  } finally {
    plaintext.fill(0);
  }
}

/**
 * Opens a sealed response (in the browser) with the key pair made for this request; checks that it
 * answers `sealedRequest` and carries `requestId`. Returns `{ chainId, report }`.
 */
export async function openResponse(sealed, { keyPair, sealedRequest, requestId }) {
  if (!(sealed instanceof Uint8Array) || sealed.length < 1 + P256_POINT_BYTES + 16) throw new GatewayFormatError('the sealed response is too short');
  if (sealed[0] !== RESPONSE_VERSION) throw new GatewayFormatError(`the sealed response has version ${sealed[0]}; this reads ${RESPONSE_VERSION}`);
  const header = sealed.subarray(0, 1 + P256_POINT_BYTES);
  const suite = responseSuite();
  let plaintext;
  try {
    const context = await suite.createRecipientContext({ recipientKey: keyPair, enc: header.slice(1), info: responseInfo(await sha256(sealedRequest)) });
    plaintext = new Uint8Array(await context.open(sealed.subarray(header.length), header));
  } catch {
    throw new GatewayFormatError('the sealed response does not open: not for this request, or tampered');
  }
  const value = JSON.parse(decoder.decode(plaintext));
  exactKeys(value, ['v', 'requestId', 'chainId', 'report'], 'the response');
  if (value.v !== PLAINTEXT_VERSION || value.requestId !== requestId) throw new GatewayFormatError('the response answers another request');
  return { chainId: value.chainId, report: value.report };
}

export { sha256 as requestHashOf };
