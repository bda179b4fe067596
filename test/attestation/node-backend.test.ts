// The Node fast path (package export condition `node` → index.node.ts, node:crypto) must end every
// corpus case exactly as the portable WebCrypto verifier does, cold and warm.
import { describe, expect, it } from 'vitest';
import * as nodeEntry from '../../src/attestation/index.node.js';
import * as portable from '../../src/attestation/index.js';
import { fixturesDir } from '../helpers/fixtures.js';
import { buildCorpus } from '../runtimes/corpus.js';
import { runCase } from '../runtimes/corpus-script.js';

describe.skipIf(!fixturesDir)('node:crypto backend (the `node` export condition)', () => {
  it('gives every corpus case the same outcome as the portable verifier, cold and warm', async () => {
    const cases = buildCorpus().filter((c) => c.kind === 'verify');
    expect(cases.length).toBeGreaterThan(60);
    const warmNode = nodeEntry.createAttestationVerifier();
    const warmPortable = portable.createAttestationVerifier();
    const differing: string[] = [];
    for (const c of cases) {
      const [n, p] = [await runCase(c, nodeEntry.verifyAttestationDocument), await runCase(c, portable.verifyAttestationDocument)];
      if (n !== p || !n.startsWith(c.expect)) differing.push(`${c.name}: node=${n} portable=${p} expected=${c.expect}`);
      const [wn, wp] = [await runCase(c, (d, o) => warmNode.verify(d, o)), await runCase(c, (d, o) => warmPortable.verify(d, o))];
      if (wn !== n || wp !== p) differing.push(`warm ${c.name}: node=${wn} portable=${wp}`);
    }
    expect(differing).toEqual([]);
  });

  it('exports the same names as the portable entry', () => {
    expect(Object.keys(nodeEntry).sort()).toEqual(Object.keys(portable).sort());
    expect(nodeEntry.createAttestationVerifier).not.toBe(portable.createAttestationVerifier);
  });
});
