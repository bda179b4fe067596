import { describe, expect, it } from 'vitest';
import { verifyAttestationDocument } from '../../src/attestation/index.js';
import { decodeCbor, type CborKey, type CborValue } from '../../src/internal/cbor.js';
import { encodeCbor } from '../../src/testing/cbor.js';
import { createTestPki, signCoseSign1 } from '../../src/testing/index.js';
import { accepted, fixture, fixturesDir } from '../helpers/fixtures.js';
import { flipAt, parts, withPayload } from '../helpers/cose-edit.js';

const entry = () => accepted().find((e) => e.file === 'blocky-nitrite-2024-09-07.cbor')!;
const original = () => fixture('nitro', entry().file);
const at = () => ({ currentDate: new Date(entry().timestamp_ms!) });

function offsetOf(doc: Uint8Array, needle: Uint8Array): number {
  const at = Buffer.from(doc).indexOf(Buffer.from(needle));
  if (at < 0) throw new Error('needle not found');
  return at;
}

const codeOf = async (doc: Uint8Array, options = at()) =>
  verifyAttestationDocument(doc, options).then(
    () => 'ok',
    (err: { code?: string }) => err.code ?? String(err),
  );

describe.skipIf(!fixturesDir)('mutations of a real AWS document', () => {
  it('re-encodes the untouched document byte for byte (the mutation helper is faithful)', async () => {
    const doc = original();
    expect(Buffer.from(withPayload(doc, () => {})).equals(Buffer.from(doc))).toBe(true);
    expect(await codeOf(withPayload(doc, () => {}))).toBe('ok');
  });

  it('rejects a flipped byte in a PCR value, the module id and the timestamp with SIGNATURE_INVALID', async () => {
    const doc = original();
    const { payload } = parts(doc);
    const pcr0 = (payload.get('pcrs') as Map<number, Uint8Array>).get(0)!;
    expect(await codeOf(flipAt(doc, offsetOf(doc, pcr0) + 10))).toBe('ERR_ATTESTATION_SIGNATURE_INVALID');
    expect(await codeOf(flipAt(doc, offsetOf(doc, new TextEncoder().encode(entry().module_id!)) + 3))).toBe('ERR_ATTESTATION_SIGNATURE_INVALID');
    expect(await codeOf(withPayload(doc, (p) => p.set('timestamp', (p.get('timestamp') as number) + 1)))).toBe('ERR_ATTESTATION_SIGNATURE_INVALID');
  });

  it('rejects a flipped bit in every byte of the signature', async () => {
    const doc = original();
    const sigStart = doc.length - 96;
    for (let i = 0; i < 96; i += 7) expect(await codeOf(flipAt(doc, sigStart + i)), `signature byte ${i}`).toBe('ERR_ATTESTATION_SIGNATURE_INVALID');
  });

  it('rejects a flipped byte in each certificate with the right code', async () => {
    const doc = original();
    const { payload } = parts(doc);
    const certs = [...(payload.get('cabundle') as Uint8Array[]), payload.get('certificate') as Uint8Array];
    for (const [i, cert] of certs.entries()) {
      const start = offsetOf(doc, cert);
      const expected = i === 0 ? 'ERR_ATTESTATION_UNTRUSTED_ROOT' : 'ERR_ATTESTATION_CHAIN_INVALID';
      // In the signature value (last byte), in the public key, and in the validity/serial area.
      for (const offset of [cert.length - 1, cert.length - 120, 20]) {
        expect(await codeOf(flipAt(doc, start + offset)), `certificate ${i} byte ${offset}`).toBe(expected);
      }
    }
  });

  it('rejects a swapped chain order, a dropped root and a dropped intermediate', async () => {
    const doc = original();
    const swap = withPayload(doc, (p) => {
      const b = p.get('cabundle') as Uint8Array[];
      p.set('cabundle', [b[0]!, b[2]!, b[1]!, b[3]!]);
    });
    expect(await codeOf(swap)).toBe('ERR_ATTESTATION_CHAIN_INVALID');
    const dropRoot = withPayload(doc, (p) => p.set('cabundle', (p.get('cabundle') as Uint8Array[]).slice(1)));
    expect(await codeOf(dropRoot)).toBe('ERR_ATTESTATION_UNTRUSTED_ROOT');
    const dropZonal = withPayload(doc, (p) => {
      const b = p.get('cabundle') as Uint8Array[];
      p.set('cabundle', [b[0]!, b[1]!, b[3]!]);
    });
    expect(await codeOf(dropZonal)).toBe('ERR_ATTESTATION_CHAIN_INVALID');
  });

  it('rejects a chain from a self-made CA that copies AWS names, even when re-signed consistently', async () => {
    const doc = original();
    const aws = [['C', 'US'], ['O', 'Amazon'], ['OU', 'AWS']] as const;
    const pki = createTestPki({
      currentDate: new Date(entry().timestamp_ms!),
      names: {
        root: [...aws, ['CN', 'aws.nitro-enclaves']],
        regional: [...aws, ['CN', 'ec28cbbaae08094d.us-east-1.aws.nitro-enclaves']],
        zonal: [...aws, ['CN', '68a8a693dd2153f6.zonal.us-east-1.aws.nitro-enclaves']],
        instance: [...aws, ['CN', 'i-0a22e5c5f24d22174.us-east-1.aws.nitro-enclaves']],
      },
    });
    const leaf = pki.issueLeaf(new Date(entry().timestamp_ms! - 3000));
    const { payload } = parts(doc);
    payload.set('certificate', leaf.der);
    payload.set('cabundle', [...pki.cabundle]);
    const forged = signCoseSign1(encodeCbor(payload), leaf.privateKey);
    expect(await codeOf(forged)).toBe('ERR_ATTESTATION_UNTRUSTED_ROOT');
    // The same forgery is internally consistent: it passes only when its own root is trusted.
    expect(await codeOf(forged, { ...at(), trustAnchors: [pki.root.der] } as never)).toBe('ok');

    // The real AWS root in front of the fake intermediates: the first link fails.
    payload.set('cabundle', [(parts(doc).payload.get('cabundle') as Uint8Array[])[0]!, ...pki.cabundle.slice(1)]);
    const grafted = signCoseSign1(encodeCbor(payload), leaf.privateKey);
    expect(await codeOf(grafted)).toBe('ERR_ATTESTATION_CHAIN_INVALID');
  });

  it('rejects a real chain with a leaf swapped in from another real document', async () => {
    const other = parts(fixture('nitro', 'evervault-ga-valid-attestation-doc.cbor')).payload.get('certificate') as Uint8Array;
    const doc = withPayload(original(), (p) => p.set('certificate', other));
    expect(await codeOf(doc)).toBe('ERR_ATTESTATION_CHAIN_INVALID');
  });

  it('rejects structural changes to the COSE envelope', async () => {
    const doc = original();
    const { prot, payloadBytes, sig } = parts(doc);
    const reencode = (v: unknown) => encodeCbor(v);
    expect(await codeOf(reencode([prot, new Map([[4, new Uint8Array([1])]]), payloadBytes, sig]))).toBe('ERR_ATTESTATION_MALFORMED');
    expect(await codeOf(reencode([encodeCbor(new Map([[1, -7]])), new Map(), payloadBytes, sig]))).toBe('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM');
    expect(await codeOf(reencode([encodeCbor(new Map([[1, -35], [3, 0]])), new Map(), payloadBytes, sig]))).toBe('ERR_ATTESTATION_MALFORMED');
    expect(await codeOf(reencode([prot, new Map(), payloadBytes, sig.subarray(0, 95)]))).toBe('ERR_ATTESTATION_MALFORMED');
    expect(await codeOf(reencode([prot, new Map(), payloadBytes]))).toBe('ERR_ATTESTATION_MALFORMED');
    expect(await codeOf(Buffer.concat([doc, Uint8Array.of(0)]))).toBe('ERR_ATTESTATION_MALFORMED');
    // Tag 18 is allowed; any other tag is not.
    expect(await codeOf(Buffer.concat([Uint8Array.of(0xd2), doc]))).toBe('ok');
    expect(await codeOf(Buffer.concat([Uint8Array.of(0xd8, 0x62), doc]))).toBe('ERR_ATTESTATION_MALFORMED');
  });

  it('rejects payload fields of the wrong type or size', async () => {
    const doc = original();
    const cases: Array<[string, (p: Map<string, CborValue>) => void]> = [
      ['digest SHA256', (p) => p.set('digest', 'SHA256')],
      ['empty module id', (p) => p.set('module_id', '')],
      ['timestamp zero', (p) => p.set('timestamp', 0)],
      ['timestamp text', (p) => p.set('timestamp', '1')],
      ['pcr of 47 bytes', (p) => (p.get('pcrs') as Map<number, Uint8Array>).set(3, new Uint8Array(47))],
      ['pcr index 32', (p) => (p.get('pcrs') as Map<number, Uint8Array>).set(32, new Uint8Array(48))],
      ['no pcrs', (p) => p.set('pcrs', new Map())],
      ['nonce of 1025 bytes', (p) => p.set('nonce', new Uint8Array(1025))],
      ['user_data text', (p) => p.set('user_data', 'x')],
      ['empty cabundle', (p) => p.set('cabundle', [])],
      ['cabundle entry of 1025 bytes', (p) => p.set('cabundle', [new Uint8Array(1025)])],
      ['missing certificate', (p) => p.delete('certificate')],
    ];
    for (const [name, change] of cases) expect(await codeOf(withPayload(doc, change)), name).toBe('ERR_ATTESTATION_MALFORMED');
  });
});
