/**
 * The shared corpus runner, bundled once and executed unchanged in every runtime (see
 * harness.ts). It imports the verifier the way a user does and reports, per case, the
 * outcome as a string: `ok …facts…`, the error code, or `uncoded …` for anything else.
 * Portable on purpose: WebCrypto, Uint8Array, atob — nothing from Node.
 */
import { createAttestationVerifier, NitroEnclaveError, verifyAttestationDocument, type VerifyAttestationOptions } from '../../src/attestation/index.js';
import { decodeCoseSign1, verifyCoseSign1 } from '../../src/attestation/cose-sign1.js';
import { fromBase64, toHex } from '../../src/internal/bytes.js';

export interface WireOptions {
  currentDateMs?: number;
  clockToleranceMs?: number;
  maxAgeMs?: number;
  allowDebug?: boolean;
  /** base64 DER certificates, or hex fingerprints. */
  trustAnchors?: string[];
  nonce?: string;
  /** One PCR set, or alternatives (any one set matching in full admits the document). */
  expectedPcrs?: Record<string, string> | Array<Record<string, string>>;
}

export interface CorpusCase {
  name: string;
  kind: 'verify' | 'cose';
  /** base64 */
  doc: string;
  options?: WireOptions;
  /** COSE vectors: the vector's public key. */
  jwk?: { kty: string; crv: string; x: string; y: string };
}

export interface CorpusInput {
  cases: CorpusCase[];
  /** Also verify every case a second time on one shared (warm) verifier. */
  warm?: boolean;
}

const b64 = (s: string): Uint8Array => {
  const out = fromBase64(s);
  if (!out) throw new Error('bad base64 in corpus');
  return out;
};

function options(w: WireOptions = {}): VerifyAttestationOptions {
  return {
    ...(w.currentDateMs !== undefined ? { currentDate: new Date(w.currentDateMs) } : {}),
    ...(w.clockToleranceMs !== undefined ? { clockToleranceMs: w.clockToleranceMs } : {}),
    ...(w.maxAgeMs !== undefined ? { maxAgeMs: w.maxAgeMs } : {}),
    ...(w.allowDebug !== undefined ? { allowDebug: w.allowDebug } : {}),
    ...(w.trustAnchors ? { trustAnchors: w.trustAnchors.map((a) => (/^[0-9a-f]{64}$/.test(a) ? a : b64(a))) } : {}),
    ...(w.nonce !== undefined ? { nonce: b64(w.nonce) } : {}),
    ...(w.expectedPcrs ? { expectedPcrs: w.expectedPcrs } : {}),
  };
}

async function outcome(fn: () => Promise<string>): Promise<string> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof NitroEnclaveError) return err.code;
    if (err instanceof TypeError) return `TypeError`;
    return `uncoded ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
  }
}

export async function runCase(c: CorpusCase, verify: typeof verifyAttestationDocument): Promise<string> {
  if (c.kind === 'cose') {
    return outcome(async () => {
      const sign1 = decodeCoseSign1(b64(c.doc));
      const key = await crypto.subtle.importKey('jwk', c.jwk!, { name: 'ECDSA', namedCurve: c.jwk!.crv }, false, ['verify']);
      await verifyCoseSign1(sign1, key);
      return 'ok';
    });
  }
  return outcome(async () => {
    const f = await verify(b64(c.doc), options(c.options));
    return `ok ${f.moduleId} ${f.timestamp.toISOString()} pcr0=${(f.pcrsHex[0] ?? '').slice(0, 16)} debug=${f.debugMode} leafUntil=${f.certificateNotAfter.toISOString()} nonce=${f.nonce ? toHex(f.nonce).slice(0, 16) : 'none'}`;
  });
}

export async function run(input: CorpusInput): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const c of input.cases) out[c.name] = await runCase(c, verifyAttestationDocument);
  if (input.warm) {
    const shared = createAttestationVerifier();
    const verify = (d: Uint8Array, o?: VerifyAttestationOptions) => shared.verify(d, o);
    for (const c of input.cases) if (c.kind === 'verify') out[`warm: ${c.name}`] = await runCase(c, verify);
  }
  return out;
}
