// The hot-path changes of issue 21's second round (docs/performance-notes.md) keep every check:
// the DER signature path checks what the r‖s conversion checked, the OID table names each OID as
// decodeOid does, the lazy pcrsHex is the same data, and a warm verifier does one verify for a
// document whose chain and leaf it has seen while still judging the leaf's validity at each call.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KNOWN_OIDS, oidAt, parseCertificate } from '../../src/attestation/certificate.js';
import { createAttestationVerifier as nodeVerifier } from '../../src/attestation/index.node.js';
import { createAttestationVerifier as portableVerifier } from '../../src/attestation/index.js';
import { nodeCryptoBackend } from '../../src/attestation/node-crypto.js';
import { derSignatureToP1363, isStrictDerSignature } from '../../src/attestation/webcrypto.js';
import { decodeOid, readNode } from '../../src/internal/asn1.js';
import { fixture, fixturesDir, manifest } from '../helpers/fixtures.js';
import { parts, withPayload } from '../helpers/cose-edit.js';

const FILE = 'sequence-tee-verifier-2025-04.cbor';
const load = () => {
  const entry = manifest().find((e) => e.file === FILE)!;
  return { doc: fixture('nitro', FILE), currentDate: new Date(entry.timestamp_ms!) };
};

/** A DER certificate with its signature's r re-encoded one byte longer (a leading 00: not minimal). */
function withNonMinimalSignature(cert: Uint8Array): Uint8Array {
  const len = (at: number) => (cert[at + 1]! < 0x80 ? { head: 2, n: cert[at + 1]! } : { head: 2 + (cert[at + 1]! & 0x7f), n: cert[at + 1]! === 0x81 ? cert[at + 2]! : (cert[at + 2]! << 8) | cert[at + 3]! });
  const outer = len(0);
  const at = outer.head;
  const tbsEnd = at + len(at).head + len(at).n;
  const algEnd = tbsEnd + len(tbsEnd).head + len(tbsEnd).n;
  const seq = cert.subarray(algEnd + len(algEnd).head + 1); // the ECDSA-Sig-Value: after the BIT STRING head and its unused-bits octet
  const rLen = seq[3]!;
  const r = seq.subarray(4, 4 + rLen);
  const sPart = seq.subarray(4 + rLen);
  const newR = Uint8Array.of(0x02, rLen + 1, 0x00, ...r);
  const sigValue = Uint8Array.of(0x30, newR.length + sPart.length, ...newR, ...sPart);
  const bitString = Uint8Array.of(0x03, sigValue.length + 1, 0x00, ...sigValue);
  const body = Uint8Array.of(...cert.subarray(outer.head, algEnd), ...bitString);
  return Uint8Array.of(0x30, 0x82, body.length >> 8, body.length & 0xff, ...body);
}

describe('strict DER signatures without the r‖s copy', () => {
  it.skipIf(!fixturesDir)('isStrictDerSignature accepts exactly what derSignatureToP1363 converts (every single-byte edit of real signatures)', () => {
    const { doc } = load();
    const { payload } = parts(doc);
    const certs = [...(payload.get('cabundle') as Uint8Array[]), payload.get('certificate') as Uint8Array];
    let accepted = 0;
    let refused = 0;
    for (const cert of certs) {
      const der = parseCertificate(cert).signature;
      expect(isStrictDerSignature(der, 'P-384')).toBe(true);
      for (let i = 0; i < der.length; i++) {
        for (const value of [0x00, 0x7f, 0x80, 0xff, der[i]! ^ 1]) {
          const edited = new Uint8Array(der);
          edited[i] = value;
          const strict = isStrictDerSignature(edited, 'P-384');
          expect(strict, `byte ${i} = ${value}`).toBe(derSignatureToP1363(edited, 'P-384') !== null);
          if (strict) accepted++;
          else refused++;
        }
      }
    }
    expect(accepted).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  });

  it('refuses a zero, a negative, a non-minimal and an over-wide INTEGER, and trailing bytes', () => {
    const r = new Uint8Array(48).fill(0x11);
    const sig = (rBytes: Uint8Array, extra: number[] = []) => {
      const intR = [0x02, rBytes.length, ...rBytes];
      const intS = [0x02, 0x01, 0x05];
      const body = [...intR, ...intS];
      return Uint8Array.of(0x30, body.length, ...body, ...extra);
    };
    expect(isStrictDerSignature(sig(r), 'P-384')).toBe(true);
    expect(isStrictDerSignature(sig(Uint8Array.of(0)), 'P-384')).toBe(false);
    expect(isStrictDerSignature(sig(Uint8Array.of(0x80, 1)), 'P-384')).toBe(false);
    expect(isStrictDerSignature(sig(Uint8Array.of(0, 0x11)), 'P-384')).toBe(false);
    expect(isStrictDerSignature(sig(new Uint8Array(49).fill(0x11)), 'P-384')).toBe(false);
    expect(isStrictDerSignature(sig(r, [0]), 'P-384')).toBe(false);
  });
});

describe('certificate OIDs matched by bytes', () => {
  it('names every table entry as decodeOid does', () => {
    for (const [bytes, text] of KNOWN_OIDS) {
      expect(decodeOid(bytes)).toBe(text);
      const node = readNode(Uint8Array.of(0x06, bytes.length, ...bytes), 0, bytes.length + 2);
      expect(oidAt(Uint8Array.of(0x06, bytes.length, ...bytes), node)).toBe(text);
    }
    const other = Uint8Array.of(0x06, 0x03, 0x55, 0x1d, 0x20); // certificatePolicies: not in the table
    expect(oidAt(other, readNode(other, 0, other.length))).toBe('2.5.29.32');
  });
});

describe.skipIf(!fixturesDir)('the warm path keeps every check (real AWS document)', () => {
  afterEach(() => vi.restoreAllMocks());

  it('node:crypto: a cold verification checks the 4 chain links on their DER signature', async () => {
    const { doc, currentDate } = load();
    await nodeVerifier().verify(doc, { currentDate });
    const der = vi.spyOn(nodeCryptoBackend, 'ecdsaVerifyDer');
    const cose = vi.spyOn(nodeCryptoBackend, 'ecdsaVerify');
    await nodeVerifier().verify(doc, { currentDate });
    expect(der).toHaveBeenCalledTimes(4);
    expect(cose).toHaveBeenCalledTimes(1);
  });

  it('a non-minimal DER signature on the leaf is refused by both backends with the same error', async () => {
    const { doc, currentDate } = load();
    const leaf = parts(doc).payload.get('certificate') as Uint8Array;
    const bad = withPayload(doc, (p) => p.set('certificate', withNonMinimalSignature(leaf)));
    for (const create of [nodeVerifier, portableVerifier]) {
      const err = await create().verify(bad, { currentDate }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_ATTESTATION_CHAIN_INVALID' });
      expect((err as Error).message).toMatch(/^signature of leaf certificate "[^"]+" does not verify with the key of cabundle\[3\] certificate "[^"]+"$/);
    }
  });

  it('a warm verifier does one verify and no import for a document whose chain and leaf it has seen, and still judges the leaf at each call', async () => {
    const { doc, currentDate } = load();
    const verifier = nodeVerifier();
    const first = await verifier.verify(doc, { currentDate });
    const imports = vi.spyOn(nodeCryptoBackend, 'importEcPoint');
    const links = vi.spyOn(nodeCryptoBackend, 'ecdsaVerifyDer');
    const cose = vi.spyOn(nodeCryptoBackend, 'ecdsaVerify');
    await verifier.verify(doc, { currentDate });
    expect([imports.mock.calls.length, links.mock.calls.length, cose.mock.calls.length]).toEqual([0, 0, 1]);
    const late = new Date(first.certificateNotAfter.getTime() + 1);
    await expect(verifier.verify(doc, { currentDate: late })).rejects.toMatchObject({
      code: 'ERR_ATTESTATION_CERT_EXPIRED',
      message: expect.stringMatching(/^leaf certificate "[^"]+" expired at .* \(checked at .*\)$/),
    });
  });

  it('pcrsHex, read lazily, is the hex of pcrs and is in JSON and spreads like any field', async () => {
    const { doc, currentDate } = load();
    const facts = await nodeVerifier().verify(doc, { currentDate });
    const expected = Object.fromEntries(Object.entries(facts.pcrs).map(([i, v]) => [i, Buffer.from(v).toString('hex')]));
    expect(facts.pcrsHex).toEqual(expected);
    expect(facts.pcrsHex).toBe(facts.pcrsHex); // computed once
    expect({ ...facts }.pcrsHex).toEqual(expected);
    expect(JSON.parse(JSON.stringify(facts)).pcrsHex).toEqual(expected);
    expect(Object.keys(facts)).toContain('pcrsHex');
  });
});
