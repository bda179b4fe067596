// Caller-chosen input must never reach a domain the library uses. An enclave app that exposes its
// HPKE receiver's attest(nonce, { userData }) hands a client (the parent, too) a document with the
// client's bytes in user_data. If those bytes were an attested-TLS certificate binding of the
// client's own key, the client could present the enclave's document on its own certificate and be
// taken for the enclave. Two independent locks: the receiver refuses the library's reserved
// user_data prefix, and a TLS client refuses a certificate document that has a public_key or a
// nonce (the library's certificate documents have neither), whatever its user_data says.
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { createServer, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { NitroEnclaveError } from '../../src/errors.js';
import { isReservedUserData, RESERVED_USER_DATA_PREFIX } from '../../src/internal/reserved.js';
import { createNsmClient } from '../../src/nsm/client.js';
import { createAttestedReceiver } from '../../src/seal/index.js';
import { createSimulatedEnclave, createSimulatedNsm, testImagePcr } from '../../src/testing/index.js';
import { issueAttestedCertificate } from '../../src/tls/certificate.js';
import * as tls from '../../src/tls/index.js';
import { close, hex, listen } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

const enclave = createSimulatedEnclave({ pcrs: { 0: testImagePcr('service') } });
const nsm = createNsmClient(createSimulatedNsm(enclave));
const trustAnchors = [enclave.trustAnchor];
const pcr0 = hex(enclave.pcrs.get(0)!);

async function refusal(port: number): Promise<NitroEnclaveError> {
  try {
    const { socket } = await tls.connectAttested({ host: '127.0.0.1', port, expectedPcrs: { 0: pcr0 }, trustAnchors });
    socket.destroy();
  } catch (err) {
    if (err instanceof NitroEnclaveError) return err;
    throw err;
  }
  throw new Error('the client accepted the parent as the enclave');
}

describe('a document made for another purpose never vouches for a TLS key', () => {
  it('every user_data label the library writes is under the reserved prefix', () => {
    const labels = Object.entries(tls).filter(([name, v]) => name.endsWith('_BINDING_LABEL') && typeof v === 'string');
    expect(labels.map(([n]) => n).sort()).toEqual(['CERTIFICATE_BINDING_LABEL', 'SESSION_BINDING_LABEL']);
    for (const [, label] of labels) expect(isReservedUserData(new TextEncoder().encode(label as string))).toBe(true);
    expect(isReservedUserData(new TextEncoder().encode(RESERVED_USER_DATA_PREFIX.slice(0, -1)))).toBe(false);
  });

  it("the enclave's HPKE receiver refuses caller user_data under the reserved prefix (and still takes other bytes)", async () => {
    const receiver = await createAttestedReceiver({ nsm });
    const spki = new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }));
    await expect(receiver.attest(undefined, { userData: tls.certificateBinding(spki) })).rejects.toThrow(new TypeError(`userData must not begin with "${RESERVED_USER_DATA_PREFIX}": that prefix is reserved for the library's own bindings`));
    await expect(receiver.attest(undefined, { userData: new TextEncoder().encode('app data') })).resolves.toBeInstanceOf(Uint8Array);
  });

  it("a client refuses the enclave's document with the parent's binding and a public_key (what an HPKE receiver makes) before writing a byte", async () => {
    // The parent got this document some other way than the receiver (an app calling the NSM with a
    // client's bytes): user_data is the binding of the parent's key, public_key the receiver's key.
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const bound = await parentServerFor((spki) => nsm.attestation({ publicKey: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })), userData: tls.certificateBinding(spki) }));
    const err = await refusal(bound.port);
    expect(err.code).toBe('ERR_TLS_ATTESTATION_KEY_MISMATCH');
    expect(err.message).toBe("the peer's attestation refused: the document has a public_key, so it was not made for this binding");
    expect(Buffer.concat(bound.received).length).toBe(0);
  });

  it('a client refuses a document with the binding and a nonce', async () => {
    const bound = await parentServerFor((spki) => nsm.attestation({ nonce: new Uint8Array(32).fill(7), userData: tls.certificateBinding(spki) }));
    const err = await refusal(bound.port);
    expect(err.code).toBe('ERR_TLS_ATTESTATION_KEY_MISMATCH');
    expect(err.message).toBe("the peer's attestation refused: the document has a nonce, so it was not made for this binding");
    expect(Buffer.concat(bound.received).length).toBe(0);
  });
});

/** A parent server whose certificate carries the document `make` returns for the server's own SPKI. */
async function parentServerFor(make: (spki: Uint8Array) => Promise<Uint8Array>) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const document = await make(spki);
  const now = Date.now();
  const der = issueAttestedCertificate({ privateKey, spki, document, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000), commonName: 'parent', dnsNames: [] });
  const received: Buffer[] = [];
  const server = createServer({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: new X509Certificate(der).toString(), minVersion: 'TLSv1.3' }, (s: TLSSocket) => {
    s.on('data', (d: Buffer) => received.push(d));
    s.on('error', () => {});
  });
  const { port } = await listen(server);
  cleanups.push(() => close(server));
  return { port, received };
}
