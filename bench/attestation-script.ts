/**
 * The attestation bench as a portable script (see test/runtimes/harness.ts): bundled once and
 * run unchanged in Node, Deno, Bun, workerd and Chromium by bench/runtimes.mjs. The floor is
 * this runtime's own WebCrypto: 5 sequential P-384/SHA-384 verifies over a document-sized payload.
 */
import { createAttestationVerifier } from '../src/attestation/index.js';
import { fromBase64 } from '../src/internal/bytes.js';

interface Input {
  doc: string;
  currentDateMs: number;
  /** 'inner': time here with performance.now; 'op': run `op` n times and let the caller time it (workerd's clock stands still while code runs). */
  mode: 'inner' | 'op';
  op?: Op;
  n?: number;
  rounds?: number;
}
type Op = 'noop' | 'floor1' | 'floor5' | 'cold' | 'warm';

let state: Promise<{ ops: Record<Op, () => Promise<unknown>> }> | undefined;

function setup(input: Input) {
  state ??= (async () => {
    const doc = fromBase64(input.doc)!;
    const options = { currentDate: new Date(input.currentDateMs) };
    const subtle = crypto.subtle;
    const pair = (await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as { privateKey: Parameters<typeof subtle.sign>[1]; publicKey: Parameters<typeof subtle.sign>[1] };
    const data = doc.slice(0, doc.length - 96);
    const signature = await subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, pair.privateKey, data);
    const raw = await subtle.exportKey('raw', pair.publicKey);
    const key = await subtle.importKey('raw', raw, { name: 'ECDSA', namedCurve: 'P-384' }, false, ['verify']);
    const verifyOnce = async () => {
      if (!(await subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, key, signature, data))) throw new Error('floor signature did not verify');
    };
    const warm = createAttestationVerifier();
    await warm.verify(doc, options);
    const ops: Record<Op, () => Promise<unknown>> = {
      noop: async () => {},
      floor1: verifyOnce,
      floor5: async () => {
        for (let i = 0; i < 5; i++) await verifyOnce();
      },
      cold: () => createAttestationVerifier().verify(doc, options),
      warm: () => warm.verify(doc, options),
    };
    return { ops };
  })();
  return state;
}

export async function run(input: Input): Promise<unknown> {
  const { ops } = await setup(input);
  if (input.mode === 'op') {
    for (let i = 0; i < (input.n ?? 1); i++) await ops[input.op!]();
    return null;
  }
  const names: Op[] = ['floor1', 'floor5', 'cold', 'warm'];
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const rounds = input.rounds ?? 300;
  for (let r = 0; r < rounds + 30; r++) {
    for (const name of names) {
      const t = performance.now();
      await ops[name]();
      if (r >= 30) samples[name]!.push(performance.now() - t);
    }
  }
  return Object.fromEntries(names.map((n) => [n, samples[n]!.sort((a, b) => a - b)[Math.floor(samples[n]!.length / 2)]]));
}
