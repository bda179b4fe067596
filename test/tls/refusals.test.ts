// STYLE 12: "any failure destroys the socket before a request byte is written" is checked by
// enumeration. Every ERR_TLS_ATTESTATION_* code in ERROR_INFO has a server here that provokes it;
// the https agent must refuse each with exactly that code while the server receives zero plaintext
// bytes (the per-session check's own question aside, which is the check itself). A new code without
// a scenario fails the first test.
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { createServer as createHttpsServer, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { ERROR_INFO, type NitroEnclaveErrorCode } from '../../src/errors.js';
import { createTestPki, issueCertificate, testImagePcr } from '../../src/testing/index.js';
import { issueAttestedCertificate } from '../../src/tls/certificate.js';
import { bitString, explicit, integer, octetString, oid, sequence, set, time, utf8String } from '../../src/tls/der.js';
import { ATTESTATION_EXTENSION_OID, createAttestedHttpsAgent, createAttestedHttpsServer, type AttestedAgentOptions } from '../../src/tls/index.js';
import { attestedEnclave, close, hex, listen } from './helpers.js';
import { sign } from 'node:crypto';

const servers: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const s of servers) await s();
});

const pki = createTestPki();
const trustAnchors = [pki.root.der];
const pcr0 = hex(testImagePcr('service'));
const pem = (der: Uint8Array) => new X509Certificate(der).toString();
const keyPem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' });

/** Serves `key`/`cert` and records the plaintext each connection received after the handshake. */
async function recordingServer(options: { key: string | Buffer; cert: string }, wellKnown?: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => boolean) {
  const received: Buffer[] = [];
  const server = createHttpsServer({ ...options, minVersion: 'TLSv1.3' }, (req, res) => {
    if (wellKnown?.(req, res)) return;
    res.end('app');
  });
  server.on('secureConnection', (s: TLSSocket) => s.on('data', (d: Buffer) => received.push(d)));
  const { port } = await listen(server);
  servers.push(() => close(server));
  return { port, received };
}

/** A certificate like the attested one, but with the given extension list. */
function certificateWith(extensions: Uint8Array[]) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const name = sequence(set(sequence(oid('2.5.4.3'), utf8String('odd'))));
  const alg = sequence(oid('1.2.840.10045.4.3.2'));
  const now = Date.now();
  const tbs = sequence(explicit(0, integer(2)), integer(5), alg, name, sequence(time(new Date(now - 60_000)), time(new Date(now + 3600_000))), name, new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })), explicit(3, sequence(...extensions)));
  return { key: keyPem(privateKey), cert: pem(sequence(tbs, alg, bitString(new Uint8Array(sign('sha256', tbs, privateKey))))) };
}

type Scenario = () => Promise<{ port: number; received: Buffer[]; options?: Partial<AttestedAgentOptions>; allowed?: number }>;

const SCENARIOS: Record<string, Scenario> = {
  ERR_TLS_ATTESTATION_MISSING: async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const now = Date.now();
    const der = issueCertificate({ subject: [['CN', 'plain']], subjectPublicKey: publicKey, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) }, privateKey);
    return recordingServer({ key: keyPem(privateKey), cert: pem(der) });
  },
  ERR_TLS_ATTESTATION_MALFORMED: async () => {
    // The extension's value is an INTEGER, not the OCTET STRING the format requires.
    return recordingServer(certificateWith([sequence(oid(ATTESTATION_EXTENSION_OID), octetString(integer(7)))]));
  },
  ERR_TLS_ATTESTATION_INVALID: async () => {
    // A well-formed, correctly bound document from a PKI the client does not trust.
    const stranger = await attestedEnclave('service');
    const s = await recordingServer(stranger.identity.tlsOptions());
    return s;
  },
  ERR_TLS_ATTESTATION_PCR_MISMATCH: async () => {
    const other = await attestedEnclave('other image', { pki });
    return recordingServer(other.identity.tlsOptions());
  },
  ERR_TLS_ATTESTATION_STALE: async () => {
    const e = await attestedEnclave('service', { pki, clock: () => new Date(Date.now() - 11 * 60_000) });
    return recordingServer(e.identity.tlsOptions());
  },
  ERR_TLS_ATTESTATION_KEY_MISMATCH: async () => {
    const genuine = await attestedEnclave('service', { pki });
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const now = new Date();
    const der = issueAttestedCertificate({ privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })), document: genuine.identity.document, notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + 3600_000), commonName: 'lifted', dnsNames: [] });
    return recordingServer({ key: keyPem(privateKey), cert: pem(der) });
  },
  ERR_TLS_ATTESTATION_SESSION: async () => {
    // The right certificate and key, but the session question is answered with the certificate's
    // document (not bound to this session): only the session check itself was sent.
    const e = await attestedEnclave('service', { pki });
    const s = await recordingServer(e.identity.tlsOptions(), (req, res) => {
      if (!req.url?.startsWith('/.well-known/nitro-enclave-attestation')) return false;
      res.writeHead(200, { 'content-type': 'application/cbor', 'content-length': e.identity.document.length });
      res.end(e.identity.document);
      return true;
    });
    return { ...s, options: { sessionCheck: true }, allowed: 1 };
  },
};

describe('every ERR_TLS_ATTESTATION_* refusal happens before a request byte', () => {
  it('each code has a scenario (enumerated from ERROR_INFO)', () => {
    const codes = (Object.keys(ERROR_INFO) as NitroEnclaveErrorCode[]).filter((c) => c.startsWith('ERR_TLS_ATTESTATION_')).sort();
    expect(Object.keys(SCENARIOS).sort()).toEqual(codes);
  });

  for (const [code, scenario] of Object.entries(SCENARIOS)) {
    it(`${code}: refused, the server read no request`, async () => {
      const { port, received, options, allowed = 0 } = await scenario();
      const agent = createAttestedHttpsAgent({ expectedPcrs: { 0: pcr0 }, trustAnchors, ...options });
      const err = await new Promise<unknown>((resolve) => {
        const req = request({ host: '127.0.0.1', port, path: '/secret-request-path', agent, method: 'POST' }, () => resolve(new Error('answered')));
        req.on('error', resolve);
        req.end('secret request body');
      });
      agent.destroy();
      expect(err).toMatchObject({ code });
      const text = Buffer.concat(received).toString('latin1');
      expect(text).not.toContain('secret');
      // Only the session check's own GET may precede a refusal.
      expect(text.split('HTTP/1.1\r\n').length - 1).toBe(allowed);
    });
  }
});
