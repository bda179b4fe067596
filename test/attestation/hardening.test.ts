// Issue 9 §4 "Attestation": each case here passed (or crashed) on the verifier before the fix.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NitroEnclaveError, parseAttestationDocument, verifyAttestationDocument } from '../../src/attestation/index.js';
import { encodeCbor } from '../../src/testing/cbor.js';
import { bitString, boolean, explicit, integer, octetString, oid, sequence, time } from '../../src/testing/der.js';
import { createSimulatedEnclave, createTestPki, encodeName, issueCertificate, KEY_USAGE, signCoseSign1, testImagePcr, type NameAttributes } from '../../src/testing/index.js';

const T0 = new Date('2026-03-01T12:00:00Z');
const pki = createTestPki({ currentDate: T0 });
const leaf = pki.issueLeaf(new Date(T0.getTime() - 3000));

function payload(changes: Record<string, unknown> = {}, cert = leaf.der, cabundle: readonly Uint8Array[] = pki.cabundle): Map<string, unknown> {
  const pcrs = new Map<number, Uint8Array>(Array.from({ length: 16 }, (_, i) => [i, i < 3 ? testImagePcr(`pcr${i}`) : new Uint8Array(48)]));
  const p = new Map<string, unknown>([
    ['module_id', 'i-00000000000000000-enc0000000000000000'],
    ['digest', 'SHA384'],
    ['timestamp', T0.getTime()],
    ['pcrs', pcrs],
    ['certificate', cert],
    ['cabundle', [...cabundle]],
    ['public_key', null],
    ['user_data', null],
    ['nonce', null],
  ]);
  for (const [k, v] of Object.entries(changes)) p.set(k, v);
  return p;
}

const signed = (p: Map<string, unknown>, key: KeyObject = leaf.privateKey) => signCoseSign1(encodeCbor(p), key);
const trust = { currentDate: T0, trustAnchors: [pki.root.der] };

/** Code and message of a rejection (asserted explicitly: vitest's toMatchObject skips a message RegExp on Errors). */
async function failure(p: Promise<unknown>): Promise<{ code: string; message: string } | 'ok'> {
  return p.then(
    () => 'ok' as const,
    (e: unknown) => (e instanceof NitroEnclaveError ? { code: e.code, message: e.message } : { code: `uncoded ${String(e)}`, message: '' }),
  );
}

describe('timestamp range', () => {
  it('the baseline document verifies (so each rejection below is about the one change)', async () => {
    await expect(verifyAttestationDocument(signed(payload()), { ...trust, maxAgeMs: 60_000 })).resolves.toMatchObject({ verified: true });
  });

  it('refuses a signed timestamp of 9e15 (past what a Date holds), which passed maxAgeMs and the future check before', async () => {
    const doc = signed(payload({ timestamp: 9e15 }));
    expect(await failure(verifyAttestationDocument(doc, { ...trust, maxAgeMs: 60_000 }))).toEqual({
      code: 'ERR_ATTESTATION_MALFORMED',
      message: 'timestamp must be an integer number of milliseconds since the epoch between 2019-01-01 and 2100-01-01',
    });
    // `nitro-enclave inspect` printed timestamp.toISOString(): a RangeError on this document before.
    let thrown: unknown;
    try {
      parseAttestationDocument(doc);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(NitroEnclaveError);
    expect((thrown as NitroEnclaveError).code).toBe('ERR_ATTESTATION_MALFORMED');
  });

  it('refuses timestamps before 2019 (e.g. seconds instead of milliseconds) and from 2100 on', async () => {
    for (const timestamp of [Math.floor(T0.getTime() / 1000), Date.UTC(2018, 11, 31), Date.UTC(2100, 0, 1), 2 ** 53 + 2]) {
      const result = await failure(verifyAttestationDocument(signed(payload({ timestamp })), trust));
      expect(result, String(timestamp)).toEqual({ code: 'ERR_ATTESTATION_MALFORMED', message: expect.stringMatching(/^timestamp must be/) });
    }
  });
});

describe('DER BOOLEAN', () => {
  /** A leaf like the PKI's, plus an extension of an unknown OID whose `critical` is encoded as `criticalBytes`. */
  function leafWithExtension(criticalBytes: Uint8Array | null): { der: Uint8Array; privateKey: KeyObject } {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const alg = sequence(oid('1.2.840.10045.4.3.3'));
    const ext = (id: string, critical: Uint8Array | null, value: Uint8Array) => sequence(oid(id), ...(critical ? [critical] : []), octetString(value));
    const subject: NameAttributes = [['CN', 'leaf with an unknown extension']];
    const tbs = sequence(
      explicit(0, integer(2)),
      integer(7),
      alg,
      encodeName(pki.instance.subject),
      sequence(time(new Date(T0.getTime() - 3000)), time(new Date(T0.getTime() + 3_600_000))),
      encodeName(subject),
      keys.publicKey.export({ format: 'der', type: 'spki' }),
      explicit(
        3,
        sequence(
          ext('2.5.29.19', boolean(true), sequence()),
          ext('2.5.29.15', boolean(true), bitString(Uint8Array.of(KEY_USAGE.digitalSignature))),
          ext('1.3.6.1.4.1.99999.1', criticalBytes, octetString(Uint8Array.of(1))),
        ),
      ),
    );
    return { der: sequence(tbs, alg, bitString(sign('sha384', tbs, pki.instance.privateKey))), privateKey: keys.privateKey };
  }

  it('accepts the leaf without the unknown extension marked critical, and refuses it critical (FF)', async () => {
    const plain = leafWithExtension(null);
    await expect(verifyAttestationDocument(signed(payload({}, plain.der), plain.privateKey), trust)).resolves.toMatchObject({ verified: true });
    const critical = leafWithExtension(Uint8Array.of(0x01, 0x01, 0xff));
    expect(await failure(verifyAttestationDocument(signed(payload({}, critical.der), critical.privateKey), trust))).toEqual({
      code: 'ERR_ATTESTATION_CHAIN_INVALID',
      message: expect.stringMatching(/leaf certificate cannot be parsed: .*unsupported critical extension 1\.3\.6\.1\.4\.1\.99999\.1/),
    });
  });

  it('refuses a BOOLEAN of 01, which read as "not critical" and let the unknown critical extension through before', async () => {
    for (const bytes of [Uint8Array.of(0x01, 0x01, 0x01), Uint8Array.of(0x01, 0x01, 0x80), Uint8Array.of(0x01, 0x02, 0xff, 0xff)]) {
      const odd = leafWithExtension(bytes);
      expect(await failure(verifyAttestationDocument(signed(payload({}, odd.der), odd.privateKey), trust))).toEqual({
        code: 'ERR_ATTESTATION_CHAIN_INVALID',
        message: expect.stringMatching(/leaf certificate cannot be parsed: .*DER BOOLEAN must be the single octet 00 or FF/),
      });
    }
  });
});

describe('size limits', () => {
  it('refuses a validly signed document over 16 KiB (an unknown payload key carried 13 KB before)', async () => {
    const small = signed(payload({ padding: new Uint8Array(1_000) }));
    await expect(verifyAttestationDocument(small, trust)).resolves.toMatchObject({ verified: true });
    const big = signed(payload({ padding: new Uint8Array(13_000) }));
    expect(big.length).toBeGreaterThan(16_384);
    expect(await failure(verifyAttestationDocument(big, trust))).toEqual({
      code: 'ERR_ATTESTATION_MALFORMED',
      message: `document is ${big.length} bytes, more than the 16384 an NSM document can be`,
    });
  });

  it('refuses a cabundle of more than 8 certificates, even a valid chain', async () => {
    /** root → n intermediates → leaf, all valid: only the length is wrong. */
    function chainOf(intermediates: number) {
      const keys = Array.from({ length: intermediates + 2 }, () => generateKeyPairSync('ec', { namedCurve: 'P-384' }));
      const name = (i: number): NameAttributes => [['CN', `deep ${i}`]];
      const ders = keys.map((k, i) =>
        issueCertificate(
          {
            subject: name(i),
            ...(i > 0 ? { issuer: name(i - 1) } : {}),
            subjectPublicKey: k.publicKey,
            notBefore: new Date(T0.getTime() - 86_400_000),
            notAfter: new Date(T0.getTime() + 86_400_000),
            ca: i <= intermediates ? {} : false,
            keyUsage: i <= intermediates ? KEY_USAGE.keyCertSign : KEY_USAGE.digitalSignature,
          },
          (i > 0 ? keys[i - 1]! : k).privateKey,
        ),
      );
      return { cabundle: ders.slice(0, -1), leaf: ders.at(-1)!, key: keys.at(-1)!.privateKey, root: ders[0]! };
    }
    const ok = chainOf(7); // cabundle of 8
    await expect(verifyAttestationDocument(signed(payload({}, ok.leaf, ok.cabundle), ok.key), { currentDate: T0, trustAnchors: [ok.root] })).resolves.toMatchObject({ verified: true });
    const long = chainOf(8); // cabundle of 9
    expect(await failure(verifyAttestationDocument(signed(payload({}, long.leaf, long.cabundle), long.key), { currentDate: T0, trustAnchors: [long.root] }))).toEqual({
      code: 'ERR_ATTESTATION_MALFORMED',
      message: 'cabundle has 9 certificates, at most 8 are accepted',
    });
  });
});

describe('allowDebug defaults to false', () => {
  it('refuses a debug-mode document unless allowDebug: true is given', async () => {
    const debug = createSimulatedEnclave({ pki, clock: () => T0, debugMode: true });
    expect(await failure(verifyAttestationDocument(debug.attest(), trust))).toEqual({
      code: 'ERR_ATTESTATION_DEBUG_MODE',
      message: 'the enclave runs in debug mode (PCR0, PCR1 and PCR2 are all zero) and allowDebug is false',
    });
    await expect(verifyAttestationDocument(debug.attest(), { ...trust, allowDebug: true })).resolves.toMatchObject({ debugMode: true });
  });
});
