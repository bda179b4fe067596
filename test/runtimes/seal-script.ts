/**
 * The seal corpus, bundled once and run unchanged in every runtime (see harness.ts): verifies a
 * simulated enclave's document and seals a message to it, the way a client does. Node opens the
 * messages in the test. Portable on purpose: WebCrypto, Uint8Array, atob/btoa.
 */
import { NitroEnclaveError, sealToEnclave, type SealToEnclaveOptions } from '../../src/seal/index.js';

export interface SealInput {
  /** base64 attestation document from receiver.attest(nonce). */
  document: string;
  nonce: string;
  pcr0: string;
  /** hex SHA-256 of the test root. */
  anchor: string;
  plaintext: string;
  info: string;
}

const fromB64 = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const toB64 = (b: Uint8Array) => btoa(Array.from(b, (x) => String.fromCharCode(x)).join(''));
const utf8 = (s: string) => new TextEncoder().encode(s);

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'sealed';
  } catch (err) {
    return err instanceof NitroEnclaveError ? err.code : `uncoded ${String(err)}`;
  }
}

export async function run(input: SealInput) {
  const document = fromB64(input.document);
  const options: SealToEnclaveOptions = {
    expected: { pcrs: { 0: input.pcr0 }, nonce: fromB64(input.nonce), maxAgeMs: 300_000 },
    trustAnchors: [input.anchor],
    info: utf8(input.info),
  };
  const message = await sealToEnclave(document, utf8(input.plaintext), options);
  const otherNonce = new Uint8Array(32);
  return {
    message: toB64(message),
    wrongNonce: await code(sealToEnclave(document, utf8('x'), { ...options, expected: { ...options.expected, nonce: otherNonce } })),
    wrongPcr: await code(sealToEnclave(document, utf8('x'), { ...options, expected: { ...options.expected, pcrs: { 0: 'ab'.repeat(48) } } })),
    defaultRoot: await code(sealToEnclave(document, utf8('x'), { expected: options.expected })),
  };
}
