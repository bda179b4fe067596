import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAttestationVerifier, parseAttestationDocument, verifyAttestationDocument } from '../../src/attestation/index.js';
import { decodeCbor } from '../../src/internal/cbor.js';
import { createSimulatedEnclave, createTestPki, testImagePcr } from '../../src/testing/index.js';
import { accepted, fixture, fixturesDir } from '../helpers/fixtures.js';

const T0 = new Date('2026-03-01T12:00:00Z');
const tmp = mkdtempSync(join(tmpdir(), 'nes-pki-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function pem(der: Uint8Array): string {
  return `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
}

describe('simulated enclave', () => {
  let now = T0;
  const enclave = createSimulatedEnclave({ clock: () => now });

  it('produces documents the verifier accepts with the test root, and rejects with the AWS root', async () => {
    const nonce = new Uint8Array([1, 2, 3]);
    const doc = enclave.attest({ nonce, userData: new Uint8Array([4]), publicKey: new Uint8Array([5]) });
    const facts = await verifyAttestationDocument(doc, { currentDate: T0, trustAnchors: [enclave.trustAnchor], nonce, expectedPcrs: { 0: enclave.imageSha384 } });
    expect(facts.timestamp).toEqual(T0);
    expect(facts.pcrsHex[0]).toBe(Buffer.from(testImagePcr('image')).toString('hex'));
    expect(Object.keys(facts.pcrs)).toHaveLength(16);
    expect(facts.debugMode).toBe(false);
    await expect(verifyAttestationDocument(doc, { currentDate: T0 })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_UNTRUSTED_ROOT' });
  });

  it('signs with one leaf for two hours, each leaf living about three hours, as AWS does (the fixtures: leaves 3 s to 2 h 22 min older than their documents)', async () => {
    const leafOf = (d: Uint8Array) => Buffer.from((decodeCbor((decodeCbor(d) as unknown[])[2] as Uint8Array) as Map<string, Uint8Array>).get('certificate')!).toString('hex');
    const leafAt = (t: number) => {
      now = new Date(T0.getTime() + t);
      return leafOf(enclave.attest());
    };
    const first = leafAt(0);
    expect(leafAt(60_000)).toBe(first);
    expect(leafAt(2 * 3_600_000 - 4_000)).toBe(first);
    const second = leafAt(2 * 3_600_000);
    expect(second).not.toBe(first);
    expect(leafAt(-60_000)).not.toBe(second); // a clock that went back gets a leaf valid at its time
    now = T0;
    const doc = enclave.attest();
    const anchors = { trustAnchors: [enclave.trustAnchor] };
    await expect(verifyAttestationDocument(doc, { ...anchors, currentDate: new Date(T0.getTime() + 2.9 * 3_600_000) })).resolves.toBeTruthy();
    await expect(verifyAttestationDocument(doc, { ...anchors, currentDate: new Date(T0.getTime() + 3.1 * 3_600_000) })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_CERT_EXPIRED' });
    now = new Date(T0.getTime() + 60_000);
    expect(parseAttestationDocument(enclave.attest()).timestamp).toEqual(now);
    now = T0;
  });

  it('encodes like AWS: untagged, {1:-35}, empty unprotected map, keys in AWS order, nulls for absent fields', () => {
    const [prot, unprot, payload, sig] = decodeCbor(enclave.attest()) as [Uint8Array, Map<number, unknown>, Uint8Array, Uint8Array];
    expect(Buffer.from(prot).toString('hex')).toBe('a1013822');
    expect(unprot.size).toBe(0);
    expect(sig).toHaveLength(96);
    const map = decodeCbor(payload) as Map<string, unknown>;
    expect([...map.keys()]).toEqual(['module_id', 'digest', 'timestamp', 'pcrs', 'certificate', 'cabundle', 'public_key', 'user_data', 'nonce']);
    expect(map.get('nonce')).toBeNull();
    expect([...(map.get('pcrs') as Map<number, Uint8Array>).values()].every((v) => v.length === 48)).toBe(true);
    expect(payload[0]).toBe(0xa9);
  });

  it.skipIf(!fixturesDir)('has the same payload structure as a real AWS document', () => {
    const real = decodeCbor(fixture('nitro', accepted()[0]!.file)) as [Uint8Array, Map<number, unknown>, Uint8Array, Uint8Array];
    const sim = decodeCbor(enclave.attest()) as typeof real;
    expect(Buffer.from(sim[0]).equals(Buffer.from(real[0]))).toBe(true);
    const keys = (d: typeof real) => [...(decodeCbor(d[2]) as Map<string, unknown>).keys()];
    expect(keys(sim)).toEqual(keys(real));
    expect((decodeCbor(sim[2]) as Map<string, unknown[]>).get('cabundle')).toHaveLength(4);
  });

  it('can emit an indefinite-length payload, which still verifies', async () => {
    const e = createSimulatedEnclave({ clock: () => T0, indefiniteLengthPayload: true });
    const doc = e.attest();
    expect(parseAttestationDocument(doc).indefiniteLengthPayload).toBe(true);
    await expect(verifyAttestationDocument(doc, { currentDate: T0, trustAnchors: [e.trustAnchor] })).resolves.toBeTruthy();
  });

  it('reports debug mode as all-zero PCRs', async () => {
    const e = createSimulatedEnclave({ clock: () => T0, debugMode: true, pki: enclave.pki });
    const facts = await verifyAttestationDocument(e.attest(), { currentDate: T0, trustAnchors: [e.trustAnchor], allowDebug: true });
    expect(facts.debugMode).toBe(true);
    expect(facts.pcrsHex[0]).toBe('00'.repeat(48));
    for (const allowDebug of [false, undefined]) {
      await expect(verifyAttestationDocument(e.attest(), { currentDate: T0, trustAnchors: [e.trustAnchor], allowDebug })).rejects.toMatchObject({
        code: 'ERR_ATTESTATION_DEBUG_MODE',
      });
    }
  });

  it('takes configured PCRs and validates them', () => {
    const pcr0 = 'ab'.repeat(48);
    expect(createSimulatedEnclave({ pcrs: { 0: pcr0 }, pki: enclave.pki }).imageSha384).toBe(pcr0);
    expect(() => createSimulatedEnclave({ pcrs: { 0: 'ab' }, pki: enclave.pki })).toThrow(TypeError);
  });

  it('builds a chain that OpenSSL verifies independently, with AWS-shaped constraints', () => {
    const pki = createTestPki({ currentDate: T0 });
    const leaf = pki.issueLeaf(T0);
    writeFileSync(join(tmp, 'root.pem'), pem(pki.root.der));
    writeFileSync(join(tmp, 'untrusted.pem'), [pki.regional, pki.zonal, pki.instance].map((c) => pem(c.der)).join(''));
    writeFileSync(join(tmp, 'leaf.pem'), pem(leaf.der));
    const out = execFileSync('openssl', ['verify', '-x509_strict', '-attime', String(T0.getTime() / 1000 + 60), '-CAfile', join(tmp, 'root.pem'), '-untrusted', join(tmp, 'untrusted.pem'), join(tmp, 'leaf.pem')], { encoding: 'utf8' });
    expect(out.trim()).toMatch(/leaf\.pem: OK$/);
    const text = (der: Uint8Array) => {
      writeFileSync(join(tmp, 'c.pem'), pem(der));
      return execFileSync('openssl', ['x509', '-in', join(tmp, 'c.pem'), '-noout', '-text'], { encoding: 'utf8' });
    };
    expect(text(pki.regional.der)).toMatch(/CA:TRUE, pathlen:2/);
    expect(text(pki.instance.der)).toMatch(/CA:TRUE, pathlen:0[\s\S]*Key Usage: critical\s+Certificate Sign\n/);
    const leafText = text(leaf.der);
    expect(leafText).toMatch(/NIST CURVE: P-384/);
    expect(leafText).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(leafText).toMatch(/Key Usage: critical\s+Digital Signature, Non Repudiation/);
  });

  it('caches verified links: a second document from the same chain verifies on a warm verifier', async () => {
    const verifier = createAttestationVerifier();
    const opts = { currentDate: T0, trustAnchors: [enclave.trustAnchor] };
    await verifier.verify(enclave.attest(), opts);
    await expect(verifier.verify(enclave.attest(), opts)).resolves.toBeTruthy();
    // A warm cache still checks validity windows and still rejects a broken COSE signature.
    await expect(verifier.verify(enclave.attest(), { ...opts, currentDate: new Date(T0.getTime() + 4 * 3_600_000) })).rejects.toMatchObject({ code: 'ERR_ATTESTATION_CERT_EXPIRED' });
    const tampered = enclave.attest();
    tampered[tampered.length - 1]! ^= 1;
    await expect(verifier.verify(tampered, opts)).rejects.toMatchObject({ code: 'ERR_ATTESTATION_SIGNATURE_INVALID' });
  });
});

describe('verifier cache', () => {
  it('evicts the least recently used certificate, so the CA chain outlives per-document leaves', async () => {
    const { ChainCache } = await import('../../src/attestation/chain.js');
    const pki = createTestPki({ currentDate: T0 });
    const cache = new ChainCache(3);
    const get = (der: Uint8Array) => cache.certificate(der);
    const root = get(pki.root.der);
    const leaves = Array.from({ length: 5 }, () => pki.issueLeaf(T0).der);
    const firstLeaf = get(leaves[0]!);
    expect(get(pki.root.der)).toBe(root);
    for (const leaf of leaves.slice(1)) {
      get(leaf);
      // Used with every document, so never the least recently used (first-in-first-out would drop it here).
      expect(get(pki.root.der)).toBe(root);
    }
    expect(get(leaves[0]!)).not.toBe(firstLeaf); // the old leaf was evicted and is parsed again
    expect(get(leaves[0]!)).toBe(get(leaves[0]!));
  });

  it('still fails closed for a forged intermediate after many documents went through', async () => {
    const enclave = createSimulatedEnclave({ clock: () => T0 });
    const verifier = createAttestationVerifier({ cacheSize: 8 });
    const opts = { currentDate: T0, trustAnchors: [enclave.trustAnchor] };
    for (let i = 0; i < 20; i++) await verifier.verify(enclave.attest(), opts);
    const forgedPki = createTestPki({ currentDate: T0 });
    const forged = createSimulatedEnclave({ clock: () => T0, pki: { ...enclave.pki, cabundle: [enclave.pki.root.der, forgedPki.regional.der, enclave.pki.zonal.der, enclave.pki.instance.der] } });
    await expect(verifier.verify(forged.attest(), opts)).rejects.toMatchObject({ code: 'ERR_ATTESTATION_CHAIN_INVALID' });
    await expect(verifier.verify(enclave.attest(), opts)).resolves.toBeTruthy();
  });
});
