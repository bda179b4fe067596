import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { webcrypto, type JsonWebKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { NitroEnclaveError } from '../../src/errors.js';
import { decodeCoseSign1, sigStructure, verifyCoseSign1 } from '../../src/attestation/cose-sign1.js';
import { fixtureText, fixturesDir } from '../helpers/fixtures.js';

interface Vector {
  title: string;
  fail?: boolean;
  input: { sign0?: { key: JsonWebKey; alg: string; external?: string }; sign?: unknown };
  intermediates?: { ToBeSign_hex?: string };
  output: { cbor: string };
}

function vectors(): Array<{ name: string; v: Vector }> {
  if (!fixturesDir) return [];
  const out: Array<{ name: string; v: Vector }> = [];
  for (const dir of readdirSync(join(fixturesDir, 'cose'))) {
    for (const file of readdirSync(join(fixturesDir, 'cose', dir))) {
      out.push({ name: `${dir}/${file}`, v: JSON.parse(fixtureText('cose', dir, file)) as Vector });
    }
  }
  return out;
}

const bytes = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'));

/** Decode, then verify with the vector's own key (imported through WebCrypto). Throws what the COSE layer throws. */
async function run(v: Vector): Promise<void> {
  const sign1 = decodeCoseSign1(bytes(v.output.cbor));
  const key = v.input.sign0!.key as JsonWebKey & { x_hex?: string; y_hex?: string };
  const b64 = (hex: string | undefined) => (hex === undefined ? undefined : Buffer.from(hex, 'hex').toString('base64url'));
  const jwk = { kty: key.kty, crv: key.crv, x: key.x ?? b64(key.x_hex), y: key.y ?? b64(key.y_hex) };
  const cryptoKey = await webcrypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: jwk.crv! }, false, ['verify']);
  await verifyCoseSign1(sign1, cryptoKey);
}

async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
    return 'ok';
  } catch (err) {
    if (err instanceof NitroEnclaveError) return err.code;
    throw err;
  }
}

describe.skipIf(!fixturesDir)('COSE_Sign1 layer against the cose-wg vectors (../shared/fixtures/cose)', () => {
  const all = vectors();

  it('finds the vectors', () => {
    expect(all.length).toBeGreaterThanOrEqual(19);
  });

  it('verifies the ES384 vector (ecdsa-sig-02) and rejects it with one bit flipped', async () => {
    const { v } = all.find((e) => e.name === 'ecdsa-examples/ecdsa-sig-02.json')!;
    expect(await codeOf(() => run(v))).toBe('ok');
    const tampered = { ...v, output: { cbor: v.output.cbor.slice(0, -2) + (v.output.cbor.endsWith('3C') ? '3D' : '3C') } };
    expect(await codeOf(() => run(tampered))).toBe('ERR_ATTESTATION_SIGNATURE_INVALID');
  });

  it('builds the Sig_structure byte for byte from the bytes as received', () => {
    for (const { name, v } of all) {
      if (v.fail || !v.input.sign0 || !v.intermediates?.ToBeSign_hex || v.input.sign0.external || name.endsWith('sign-pass-01.json')) continue;
      let sign1;
      try {
        sign1 = decodeCoseSign1(bytes(v.output.cbor));
      } catch {
        continue; // e.g. the wrong-tag vector
      }
      expect(Buffer.from(sigStructure(sign1.protectedBytes, sign1.payload)).toString('hex').toUpperCase(), name).toBe(v.intermediates.ToBeSign_hex);
    }
  });

  it('is byte-faithful where sign-pass-01 is not: h\'A0\' as received is what we sign over, not h\'\'', () => {
    const { v } = all.find((e) => e.name === 'sign1-tests/sign-pass-01.json')!;
    const sign1 = decodeCoseSign1(bytes(v.output.cbor));
    expect(Buffer.from(sign1.protectedBytes).toString('hex')).toBe('a0');
    expect(Buffer.from(sigStructure(sign1.protectedBytes, sign1.payload)).toString('hex').toUpperCase()).not.toBe(v.intermediates!.ToBeSign_hex);
  });

  it('rejects every "fail" vector', async () => {
    const failing = all.filter((e) => e.v.fail);
    expect(failing.length).toBeGreaterThanOrEqual(6);
    for (const { name, v } of failing) {
      expect(await codeOf(() => run(v)), name).toMatch(/^ERR_ATTESTATION_(MALFORMED|UNSUPPORTED_ALGORITHM|SIGNATURE_INVALID)$/);
    }
    const byName = (n: string) => codeOf(() => run(all.find((e) => e.name === `sign1-tests/${n}.json`)!.v));
    expect(await byName('sign-fail-01')).toBe('ERR_ATTESTATION_MALFORMED'); // tag 998
    expect(await byName('sign-fail-03')).toBe('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM'); // alg -999
    expect(await byName('sign-fail-04')).toBe('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM'); // alg "unknown"
  });

  it('rejects ES256 and ES512 as unsupported: Nitro signs with ES384 only', async () => {
    for (const name of ['ecdsa-examples/ecdsa-sig-01.json', 'ecdsa-examples/ecdsa-sig-03.json', 'ecdsa-examples/ecdsa-sig-04.json', 'CWT/A_3.json', 'RFC8152/Appendix_C_2_1.json', 'sign1-tests/sign-pass-03.json']) {
      const { v } = all.find((e) => e.name === name)!;
      expect(await codeOf(() => run(v)), name).toBe('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM');
    }
  });

  it('rejects COSE_Sign (tag 98, multi-signer) structures as not COSE_Sign1', async () => {
    for (const { name, v } of all.filter((e) => e.v.input.sign)) {
      expect(await codeOf(() => decodeCoseSign1(bytes(v.output.cbor))), name).toBe('ERR_ATTESTATION_MALFORMED');
    }
  });
});
