import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NitroEnclaveError, parseAttestationDocument, verifyAttestationDocument } from '../../src/attestation/index.js';
import { encodeCbor } from '../../src/testing/cbor.js';
import { createSimulatedEnclave } from '../../src/testing/index.js';
import { fixture, fixturesDir } from '../helpers/fixtures.js';

/** FUZZ_RUNS=N scales every property up for a longer local run. */
const runs = (n: number) => Number(process.env.FUZZ_RUNS ?? n);

/** Runs verify and parse; anything but a coded error or TypeError escapes the property. */
async function mustFailClean(bytes: Uint8Array): Promise<void> {
  for (const run of [() => verifyAttestationDocument(bytes), async () => parseAttestationDocument(bytes)]) {
    try {
      await run();
    } catch (err) {
      if (err instanceof NitroEnclaveError || err instanceof TypeError) continue;
      throw err;
    }
  }
}

const enclave = createSimulatedEnclave({ clock: () => new Date('2026-01-01T00:00:00Z') });
const seedDocs = (): Uint8Array[] => {
  const docs = [enclave.attest({ nonce: new Uint8Array(8) })];
  if (fixturesDir) docs.push(fixture('nitro', 'blocky-nitrite-2024-09-07.cbor'), fixture('nitro', 'unattributed-indefinite-map-2026-02-02.cbor'));
  return docs;
};

/** Hand-written CBOR heads that stress the decoder: huge lengths, odd indefinite items, breaks. */
const nastyHead = fc.constantFrom(
  ...['1bffffffffffffffff', '5bffffffffffffffff', '7bfffffffffffffff0', '9b7fffffffffffffff', 'bbffffffffffffffff', '5f', '7f', '9f', 'bf', 'ff', 'd8', 'd2', 'f7', 'f9', 'fb', '1c', '3f', 'c0', '5a00100000', '84', 'a1'].map(
    (h) => new Uint8Array(Buffer.from(h, 'hex')),
  ),
);

/** The head of a definite-length array or map of `n` items, as cbor-x writes it (n one-byte items follow). */
const arrayHead = (n: number) => encodeCbor(new Array(n).fill(0)).subarray(0, -n || undefined);
const mapHead = (n: number) => encodeCbor(new Map(Array.from({ length: n }, (_, i) => [i, 0]))).subarray(0, -2 * n || undefined);
const concat = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

/**
 * Well-formed CBOR of arbitrary shape, as bytes. Scalars come from cbor-x; containers are framed
 * here around already-encoded items because cbor-x cannot write an indefinite-length map, and
 * one may sit at any depth.
 */
const cborValue: fc.Arbitrary<Uint8Array> = fc.letrec<{ v: Uint8Array }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.oneof(fc.integer(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.string(), fc.uint8Array({ maxLength: 64 }), fc.constantFrom(null, true, false, undefined)).map(encodeCbor),
    fc.array(tie('v'), { maxLength: 4 }).map((items) => concat([arrayHead(items.length), ...items])),
    fc.array(fc.tuple(fc.oneof(fc.string(), fc.integer()), tie('v')), { maxLength: 4 }).map((e) => {
      const entries = new Map(e);
      return concat([mapHead(entries.size), ...[...entries].flatMap(([k, v]) => [encodeCbor(k), v])]);
    }),
    fc.array(fc.tuple(fc.string(), tie('v')), { maxLength: 4 }).map((e) => concat([Uint8Array.of(0xbf), ...[...new Map(e)].flatMap(([k, v]) => [encodeCbor(k), v]), Uint8Array.of(0xff)])),
  ),
})).v;

describe('malformed input never escapes as anything but a coded error', () => {
  it('arbitrary bytes', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), mustFailClean), { numRuns: runs(400) });
  });

  it('truncations of real and simulated documents', async () => {
    for (const doc of seedDocs()) {
      for (let n = 0; n < doc.length; n += Math.max(1, Math.floor(doc.length / 150))) await mustFailClean(doc.subarray(0, n));
    }
  });

  it('random byte edits and nasty heads spliced into documents', async () => {
    const docs = seedDocs();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: docs.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.oneof(nastyHead, fc.uint8Array({ minLength: 1, maxLength: 4 }))), { minLength: 1, maxLength: 4 }),
        async (which, edits) => {
          let doc = Buffer.from(docs[which]!);
          for (const [pos, bytes] of edits) {
            const at = pos % doc.length;
            doc = Buffer.concat([doc.subarray(0, at), bytes, doc.subarray(at + bytes.length)]);
          }
          await mustFailClean(new Uint8Array(doc));
        },
      ),
      { numRuns: runs(300) },
    );
  });

  it('well-formed CBOR of the wrong shape, as a document and as a payload', async () => {
    const prot = encodeCbor(new Map([[1, -35]]));
    await fc.assert(
      fc.asyncProperty(cborValue, async (value) => {
        await mustFailClean(value);
        await mustFailClean(encodeCbor([prot, new Map(), value, new Uint8Array(96)]));
      }),
      { numRuns: runs(300) },
    );
  });

  it('payload maps with duplicate keys and trailing bytes are MALFORMED', async () => {
    const prot = encodeCbor(new Map([[1, -35]]));
    const dup = Buffer.from('a2696d6f64756c655f69646161696d6f64756c655f69646162', 'hex'); // {"module_id":"a","module_id":"b"}
    const trailing = Buffer.concat([encodeCbor(new Map([['module_id', 'a']])), Buffer.from([0])]);
    for (const payload of [dup, trailing]) {
      const doc = encodeCbor([prot, new Map(), new Uint8Array(payload), new Uint8Array(96)]);
      await expect(verifyAttestationDocument(doc)).rejects.toMatchObject({ code: 'ERR_ATTESTATION_MALFORMED', message: expect.stringMatching(/payload is not valid CBOR: (duplicate map key|1 trailing bytes)/) });
    }
  });

  it('huge declared lengths and deep nesting end quickly with bounded memory', async () => {
    const before = process.memoryUsage().rss;
    const deep = new Uint8Array(16_000).fill(0x81);
    const oversized = new Uint8Array(1_000_000).fill(0x81);
    const huge = new Uint8Array(Buffer.from('845bffffffffffffffff', 'hex'));
    const started = Date.now();
    // Explicit code and message: vitest's toMatchObject on an Error does not apply a message RegExp.
    const failure = (doc: Uint8Array) => verifyAttestationDocument(doc).then(() => null, (e: NitroEnclaveError) => ({ code: e.code, message: e.message }));
    expect(await failure(deep)).toEqual({ code: 'ERR_ATTESTATION_MALFORMED', message: expect.stringMatching(/nesting too deep/) });
    expect(await failure(oversized)).toEqual({ code: 'ERR_ATTESTATION_MALFORMED', message: expect.stringMatching(/document is 1000000 bytes, more than the 16384/) });
    expect(await failure(huge)).toEqual({ code: 'ERR_ATTESTATION_MALFORMED', message: expect.stringMatching(/declared length/) });
    expect(Date.now() - started).toBeLessThan(5_000); // a hang guard, not a performance goal
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
  });
});
