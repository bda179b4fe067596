// issue 20 §1: the attested certificate, read by standard tools (the real openssl binary) and by
// Node's own X.509 parser; the document inside verifies and commits to the certificate's key.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyAttestationDocument } from '../../src/attestation/index.node.js';
import { createAttestedHttpsServer, createAttestedTlsIdentity, readAttestedCertificate, ATTESTATION_EXTENSION_OID, CERTIFICATE_BINDING_LABEL, WELL_KNOWN_PATH } from '../../src/tls/index.js';
import { attestedEnclave, close, listen, manualTimers } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'attested-cert-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the attested certificate', () => {
  it('openssl x509 -text shows the extension by its OID; asn1parse reads its value as one OCTET STRING holding the document', async () => {
    const { identity } = await attestedEnclave('cert', { dnsNames: ['enclave.test'] });
    const file = join(dir, 'cert.pem');
    writeFileSync(file, identity.certificatePem);
    const text = execFileSync('openssl', ['x509', '-in', file, '-noout', '-text'], { encoding: 'utf8' });
    expect(text).toContain(`${ATTESTATION_EXTENSION_OID}:`);
    expect(text).toContain('Subject: CN = nitro-enclave attested');
    expect(text).toContain('DNS:enclave.test');
    expect(text).toContain('TLS Web Server Authentication, TLS Web Client Authentication');
    expect(text).toMatch(/Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);

    const parsed = execFileSync('openssl', ['asn1parse', '-in', file, '-i'], { encoding: 'utf8' });
    const line = parsed.split('\n').find((l) => l.includes(`:${ATTESTATION_EXTENSION_OID}`));
    expect(line).toBeDefined();
    // The next line is the extension's OCTET STRING (extnValue); parse inside it.
    const lines = parsed.split('\n');
    const value = lines[lines.indexOf(line!) + 1]!;
    const offset = Number(/^\s*(\d+):/.exec(value)![1]);
    const inner = execFileSync('openssl', ['asn1parse', '-in', file, '-strparse', String(offset)], { encoding: 'utf8' });
    expect(inner.trim()).toMatch(new RegExp(`^0:d=0\\s+hl=\\d\\s+l=\\s*${identity.document.length} prim: OCTET STRING`));

    // openssl verifies the self-signature (the certificate is its own issuer).
    expect(execFileSync('openssl', ['verify', '-CAfile', file, '-check_ss_sig', file], { encoding: 'utf8' })).toContain(': OK');
  });

  it('Node parses it; the document verifies and its user_data is the label, a zero byte and SHA-384 of the SPKI', async () => {
    const { identity, trustAnchors, pcr0 } = await attestedEnclave('cert');
    const x509 = new X509Certificate(identity.certificate);
    const spki = x509.publicKey.export({ type: 'spki', format: 'der' });
    expect(new Uint8Array(spki)).toEqual(identity.spki);
    const { spki: read, document } = readAttestedCertificate(identity.certificate);
    expect(read).toEqual(identity.spki);
    expect(document).toEqual(identity.document);
    const facts = await verifyAttestationDocument(document!, { trustAnchors, expectedPcrs: { 0: pcr0 } });
    const expected = Buffer.concat([Buffer.from(CERTIFICATE_BINDING_LABEL, 'ascii'), Buffer.of(0), createHash('sha384').update(spki).digest()]);
    expect(Buffer.from(facts.userData!)).toEqual(expected);
    expect(facts.publicKey).toBeNull();
  });

  it('openssl s_client -showcerts shows the certificate served by an attested https server; the well-known path serves the same document', async () => {
    const { identity } = await attestedEnclave('cert');
    const { server, port } = await listen(createAttestedHttpsServer(identity, (_req, res) => res.end('app')));
    try {
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-showcerts'], { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        child.stdout.on('data', (c) => (stdout += c));
        child.on('error', reject);
        child.on('close', () => resolve(stdout));
        child.stdin.end();
      });
      expect(out).toContain(identity.certificatePem.trim());
      expect(out).toContain('New, TLSv1.3');
      const res = await fetch(`https://127.0.0.1:${port}${WELL_KNOWN_PATH}`, { dispatcher: await insecure() } as RequestInit);
      expect(res.headers.get('content-type')).toBe('application/cbor');
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(identity.document);
    } finally {
      await close(server);
    }
  });

  it('re-attests on its timer and swaps the server certificate without dropping an open connection', async () => {
    const timers = manualTimers();
    const { identity } = await attestedEnclave('cert', { timers: timers.timers });
    const { server, port } = await listen(createAttestedHttpsServer(identity, (_req, res) => res.end('app')));
    try {
      const peerCert = (s: ReturnType<typeof connect>) => new Uint8Array(s.getPeerCertificate(true).raw);
      const open = (): Promise<ReturnType<typeof connect>> =>
        new Promise((resolve, reject) => {
          const s = connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(s));
          s.on('error', reject);
        });
      const first = await open();
      const before = identity.certificate;
      expect(peerCert(first)).toEqual(before);
      expect(timers.pending.size).toBe(1);
      timers.fire();
      await new Promise((r) => setTimeout(r, 50)); // the simulated NSM answers within the tick; 50 ms is ample
      expect(identity.certificate).not.toEqual(before);
      expect(readAttestedCertificate(identity.certificate).spki).toEqual(identity.spki); // same key, new document
      expect(timers.pending.size).toBe(1); // the next re-attestation is scheduled
      const second = await open();
      expect(peerCert(second)).toEqual(identity.certificate);
      // The first connection is still open and usable.
      expect(first.destroyed).toBe(false);
      first.write('GET /x HTTP/1.1\r\nHost: a\r\n\r\n');
      const answer = await new Promise<string>((r) => first.once('data', (d) => r(String(d))));
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*app$/);
      first.destroy();
      second.destroy();
      identity.close();
      expect(timers.pending.size).toBe(0);
    } finally {
      await close(server);
    }
  });

  it('bad options are TypeErrors', async () => {
    await expect(createAttestedTlsIdentity({} as never)).rejects.toThrow(new TypeError('nsm must be an NsmClient'));
    const { nsm } = await attestedEnclave('cert');
    await expect(createAttestedTlsIdentity({ nsm, reattestIntervalMs: 10 })).rejects.toThrow(new TypeError('reattestIntervalMs must be at least 1000'));
    await expect(createAttestedTlsIdentity({ nsm, curve: 'P-521' as never })).rejects.toThrow(new TypeError("curve must be 'P-256' or 'P-384'"));
  });
});

/** A plain undici dispatcher that skips certificate checks (to read the well-known path as a tool would). */
async function insecure() {
  const { Agent } = await import('undici');
  return new Agent({ connect: { rejectUnauthorized: false } });
}

describe('re-attestation failures', () => {
  it('keep the current certificate, report to onError, and try again one interval later', async () => {
    const timers = manualTimers();
    const errors: unknown[] = [];
    const { identity, nsm } = await attestedEnclave('cert', { timers: timers.timers, onError: (e) => errors.push(e) });
    const before = identity.certificate;
    const real = nsm.attestation.bind(nsm);
    const failing = Object.assign(new Error('NSM unavailable'), { code: 'ERR_NSM_INTERNAL_ERROR' });
    nsm.attestation = () => Promise.reject(failing);
    timers.fire();
    await new Promise((r) => setTimeout(r, 20));
    expect(errors).toEqual([failing]);
    expect(identity.certificate).toBe(before);
    expect(timers.pending.size).toBe(1);
    nsm.attestation = real;
    timers.fire();
    await new Promise((r) => setTimeout(r, 50));
    expect(identity.certificate).not.toEqual(before);
    identity.close();
  });
});
