// The dependency choices, measured: each alternative does the same job on the same input.
import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import * as pkijs from 'pkijs';
import * as asn1js from 'asn1js';
import { decode as cborxDecode } from 'cbor-x';
import { createAttestationVerifier } from '../dist/attestation/index.js';
import { createAttestationVerifier as createNodeAttestationVerifier } from '../dist/attestation/index.node.js';
import { parseAttestationDocument } from '../dist/attestation/index.js';
import { parseEnvelopedData } from '../dist/kms/index.js';
import { decodeCbor } from '../dist/internal/cbor.js';
import { fmt, interleaved, line, fixturesDir } from './lib.mjs';

const fixtures = fixturesDir();

export async function benchDeps() {
  console.log('\n## Dependency choices (same input, same job)');
  const docFile = join(fixtures, 'nitro', 'blocky-nitrite-2024-09-07.cbor');
  const cmsFile = join(fixtures, 'cms', 'sdkc_input_ber.bin');
  if (!existsSync(docFile) || !existsSync(cmsFile)) {
    console.log('skipped: shared fixtures not found');
    return;
  }
  x509.cryptoProvider.set(webcrypto);
  pkijs.setEngine('node', new pkijs.CryptoEngine({ crypto: webcrypto }));
  const doc = new Uint8Array(readFileSync(docFile));
  const cms = new Uint8Array(readFileSync(cmsFile));
  const info = parseAttestationDocument(doc);
  const ders = [...info.cabundle, info.certificate];
  const currentDate = new Date(1725719859545);
  const payload = decodeCbor(doc)[2];

  const r = await interleaved(
    {
      ours: () => createAttestationVerifier().verify(doc, { currentDate }),
      oursNode: () => createNodeAttestationVerifier().verify(doc, { currentDate }),
      peculiar: async () => {
        // Chain only (4 links), without the COSE signature our figure includes.
        const certs = ders.map((d) => new x509.X509Certificate(d));
        for (let i = 1; i < certs.length; i++) {
          if (!(await certs[i].verify({ publicKey: certs[i - 1].publicKey, date: currentDate }))) throw new Error('chain');
        }
      },
      node: () => {
        // The same chain links with node:crypto's X509Certificate (OpenSSL): parse, signature, validity dates.
        const certs = ders.map((d) => new X509Certificate(d));
        for (let i = 1; i < certs.length; i++) {
          if (!certs[i].verify(certs[i - 1].publicKey)) throw new Error('chain');
        }
        for (const cert of certs) {
          if (!(new Date(cert.validFrom) <= currentDate && currentDate <= new Date(cert.validTo))) throw new Error('validity');
        }
      },
    },
    { rounds: 150, warmup: 15 },
  );
  line('attestation: our verifier, cold (chain + COSE)', fmt(r.ours.median));
  line('attestation: our verifier on node:crypto, cold', fmt(r.oursNode.median), `${(r.oursNode.median / r.ours.median).toFixed(2)} x ours`);
  line('attestation: @peculiar/x509, chain links only', fmt(r.peculiar.median), `${(r.peculiar.median / r.ours.median).toFixed(2)} x ours (and no COSE, no constraint checks)`);
  line('attestation: node:crypto X509Certificate, chain links only', fmt(r.node.median), `${(r.node.median / r.ours.median).toFixed(2)} x ours, ${(r.node.median / r.oursNode.median).toFixed(2)} x ours on node:crypto (and no COSE, no constraint checks)`);

  const c = await interleaved(
    {
      ours: () => parseEnvelopedData(cms),
      pkijs: () => {
        const ci = new pkijs.ContentInfo({ schema: asn1js.fromBER(cms.buffer.slice(cms.byteOffset, cms.byteOffset + cms.byteLength)).result });
        return new pkijs.EnvelopedData({ schema: ci.content });
      },
    },
    { rounds: 2000, warmup: 200 },
  );
  line('CMS: parseEnvelopedData (ours)', fmt(c.ours.median));
  line('CMS: pkijs ContentInfo + EnvelopedData', fmt(c.pkijs.median), `${(c.pkijs.median / c.ours.median).toFixed(1)} x ours`);

  const d = await interleaved({ strict: () => decodeCbor(payload), cborx: () => cborxDecode(payload) }, { rounds: 3000, warmup: 300 });
  line('CBOR: strict decoder (dup keys, bounds, trailing bytes)', fmt(d.strict.median));
  line('CBOR: cbor-x decode (none of those checks)', fmt(d.cborx.median), `${(d.cborx.median / d.strict.median).toFixed(2)} x strict`);
}
