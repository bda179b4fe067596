/**
 * Builds the cross-runtime corpus in Node: the real AWS documents (at their own time, today,
 * before the leaf, with a flipped signature bit), mutations of one of them, documents from the
 * simulated enclave, and the COSE working group vectors. Each case names the outcome Node must
 * produce (`expect`, a prefix of the outcome string); every other runtime must then produce
 * exactly Node's outcomes.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { decodeCbor, type CborKey, type CborValue } from '../../src/internal/cbor.js';
import { encodeCbor } from '../../src/testing/cbor.js';
import { createSimulatedEnclave, createTestPki, signCoseSign1 } from '../../src/testing/index.js';
import { accepted, fixture, fixtureText, fixturesDir, manifest } from '../helpers/fixtures.js';
import type { CorpusCase, WireOptions } from './corpus-script.js';
import { flipAt, parts, withPayload } from '../helpers/cose-edit.js';

export type ExpectedCase = CorpusCase & { expect: string };

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

const offsetOf = (doc: Uint8Array, needle: Uint8Array) => Buffer.from(doc).indexOf(Buffer.from(needle));

export function buildCorpus(): ExpectedCase[] {
  const cases: ExpectedCase[] = [];
  const add = (name: string, doc: Uint8Array, options: WireOptions, expect: string) => cases.push({ name, kind: 'verify', doc: b64(doc), options, expect });
  addSimulated(add);
  // Without ../shared/fixtures (a clone outside this workplace) only the simulated cases run.
  if (fixturesDir) addFixtureCases(cases, add, fixturesDir);
  return cases;
}

type Add = (name: string, doc: Uint8Array, options: WireOptions, expect: string) => void;

function addSimulated(add: Add): void {
  const T0 = new Date('2026-03-01T12:00:00Z');
  const enclave = createSimulatedEnclave({ clock: () => T0 });
  const anchor = { currentDateMs: T0.getTime(), trustAnchors: [b64(enclave.trustAnchor)] };
  const nonce = new Uint8Array(32).fill(7);
  add('simulated: document with nonce', enclave.attest({ nonce }), { ...anchor, nonce: b64(nonce) }, 'ok i-00000000000000000-enc0000000000000000');
  add('simulated: wrong nonce', enclave.attest({ nonce }), { ...anchor, nonce: b64(new Uint8Array(32)) }, 'ERR_ATTESTATION_NONCE_MISMATCH');
  add('simulated: default AWS anchor', enclave.attest(), { currentDateMs: T0.getTime() }, 'ERR_ATTESTATION_UNTRUSTED_ROOT');
  add('simulated: indefinite-length payload', createSimulatedEnclave({ clock: () => T0, pki: enclave.pki, indefiniteLengthPayload: true }).attest(), anchor, 'ok ');
  add('simulated: debug mode', createSimulatedEnclave({ clock: () => T0, pki: enclave.pki, debugMode: true }).attest(), anchor, 'ERR_ATTESTATION_DEBUG_MODE');
  add('simulated: four hours later', enclave.attest(), { ...anchor, currentDateMs: T0.getTime() + 4 * 3_600_000 }, 'ERR_ATTESTATION_CERT_EXPIRED');
  const flipped = enclave.attest();
  flipped[flipped.length - 1]! ^= 1;
  add('simulated: flipped signature bit', flipped, anchor, 'ERR_ATTESTATION_SIGNATURE_INVALID');
}

function addFixtureCases(cases: ExpectedCase[], add: Add, fixturesDir: string): void {
  for (const entry of accepted()) {
    const doc = fixture('nitro', entry.file);
    const at = entry.timestamp_ms!;
    add(`${entry.file} at its own time`, doc, { currentDateMs: at, allowDebug: true }, `ok ${entry.module_id} ${new Date(at).toISOString()} pcr0=${entry.pcr0!.slice(0, 16)} debug=${entry.debug_mode}`);
    add(`${entry.file} at its own time, allowDebug left at its default`, doc, { currentDateMs: at }, entry.debug_mode ? 'ERR_ATTESTATION_DEBUG_MODE' : 'ok ');
    add(`${entry.file} today`, doc, { currentDateMs: Date.UTC(2026, 10, 29), allowDebug: true }, 'ERR_ATTESTATION_CERT_EXPIRED');
    add(`${entry.file} one second before its leaf`, doc, { currentDateMs: new Date(entry.leaf_not_before!).getTime() - 1000, allowDebug: true }, 'ERR_ATTESTATION_CERT_NOT_YET_VALID');
    add(`${entry.file} with a flipped signature bit`, flipAt(doc, doc.length - 20), { currentDateMs: at, allowDebug: true }, 'ERR_ATTESTATION_SIGNATURE_INVALID');
  }
  for (const entry of manifest().filter((e) => e.expect === 'reject')) {
    add(`${entry.file} (self-signed)`, fixture('nitro', entry.file), { currentDateMs: Date.UTC(2024, 3, 17, 12) }, 'ERR_ATTESTATION_MALFORMED');
  }

  // Mutations of one real document.
  const entry = accepted().find((e) => e.file === 'blocky-nitrite-2024-09-07.cbor')!;
  const doc = fixture('nitro', entry.file);
  const at: WireOptions = { currentDateMs: entry.timestamp_ms! };
  const { payload, prot, payloadBytes, sig } = parts(doc);
  const pcr0 = (payload.get('pcrs') as Map<number, Uint8Array>).get(0)!;
  add('mutation: PCR0 byte flipped', flipAt(doc, offsetOf(doc, pcr0) + 10), at, 'ERR_ATTESTATION_SIGNATURE_INVALID');
  add('mutation: module id byte flipped', flipAt(doc, offsetOf(doc, new TextEncoder().encode(entry.module_id!)) + 3), at, 'ERR_ATTESTATION_SIGNATURE_INVALID');
  add('mutation: timestamp + 1', withPayload(doc, (p) => p.set('timestamp', (p.get('timestamp') as number) + 1)), at, 'ERR_ATTESTATION_SIGNATURE_INVALID');
  for (let i = 0; i < 96; i += 19) add(`mutation: signature byte ${i} flipped`, flipAt(doc, doc.length - 96 + i), at, 'ERR_ATTESTATION_SIGNATURE_INVALID');
  const certs = [...(payload.get('cabundle') as Uint8Array[]), payload.get('certificate') as Uint8Array];
  for (const [i, cert] of certs.entries()) {
    for (const offset of [cert.length - 1, cert.length - 120, 20]) {
      add(`mutation: certificate ${i} byte ${offset} flipped`, flipAt(doc, offsetOf(doc, cert) + offset), at, i === 0 ? 'ERR_ATTESTATION_UNTRUSTED_ROOT' : 'ERR_ATTESTATION_CHAIN_INVALID');
    }
  }
  const bundle = payload.get('cabundle') as Uint8Array[];
  add('mutation: chain order swapped', withPayload(doc, (p) => p.set('cabundle', [bundle[0]!, bundle[2]!, bundle[1]!, bundle[3]!])), at, 'ERR_ATTESTATION_CHAIN_INVALID');
  add('mutation: root dropped', withPayload(doc, (p) => p.set('cabundle', bundle.slice(1))), at, 'ERR_ATTESTATION_UNTRUSTED_ROOT');
  add('mutation: zonal dropped', withPayload(doc, (p) => p.set('cabundle', [bundle[0]!, bundle[1]!, bundle[3]!])), at, 'ERR_ATTESTATION_CHAIN_INVALID');
  const otherLeaf = parts(fixture('nitro', 'evervault-ga-valid-attestation-doc.cbor')).payload.get('certificate') as Uint8Array;
  add('mutation: leaf from another document', withPayload(doc, (p) => p.set('certificate', otherLeaf)), at, 'ERR_ATTESTATION_CHAIN_INVALID');
  add('mutation: unprotected header not empty', encodeCbor([prot, new Map([[4, new Uint8Array([1])]]), payloadBytes, sig]), at, 'ERR_ATTESTATION_MALFORMED');
  add('mutation: alg ES256', encodeCbor([encodeCbor(new Map([[1, -7]])), new Map(), payloadBytes, sig]), at, 'ERR_ATTESTATION_UNSUPPORTED_ALGORITHM');
  add('mutation: signature truncated', encodeCbor([prot, new Map(), payloadBytes, sig.subarray(0, 95)]), at, 'ERR_ATTESTATION_MALFORMED');
  add('mutation: trailing byte', Buffer.concat([doc, Uint8Array.of(0)]), at, 'ERR_ATTESTATION_MALFORMED');
  add('mutation: tag 18', Buffer.concat([Uint8Array.of(0xd2), doc]), at, 'ok ');
  add('mutation: tag 98', Buffer.concat([Uint8Array.of(0xd8, 0x62), doc]), at, 'ERR_ATTESTATION_MALFORMED');
  add('mutation: digest SHA256', withPayload(doc, (p) => p.set('digest', 'SHA256')), at, 'ERR_ATTESTATION_MALFORMED');
  add('mutation: timestamp 9e15', withPayload(doc, (p) => p.set('timestamp', 9e15)), { ...at, maxAgeMs: 60_000 }, 'ERR_ATTESTATION_MALFORMED');
  add('mutation: nonce of 1025 bytes', withPayload(doc, (p) => p.set('nonce', new Uint8Array(1025))), at, 'ERR_ATTESTATION_MALFORMED');
  add('mutation: 17 KB document', withPayload(doc, (p) => p.set('padding', new Uint8Array(10_000))), at, 'ERR_ATTESTATION_MALFORMED');
  add('expected: wrong PCR0', doc, { ...at, expectedPcrs: { 0: 'ab'.repeat(48) } }, 'ERR_ATTESTATION_PCR_MISMATCH');
  add('expected: right PCR0', doc, { ...at, expectedPcrs: { 0: entry.pcr0!.toUpperCase() } }, 'ok ');
  add('expected: PCR alternatives, the second admits it', doc, { ...at, expectedPcrs: [{ 0: 'ab'.repeat(48) }, { 0: entry.pcr0! }] }, 'ok ');
  add('expected: PCR alternatives, PCR0 of one set with PCR1 of another', doc, { ...at, expectedPcrs: [{ 0: entry.pcr0!, 1: 'ab'.repeat(48) }, { 0: 'ab'.repeat(48) }] }, 'ERR_ATTESTATION_PCR_MISMATCH');
  add('expected: wrong nonce', doc, { ...at, nonce: b64(new Uint8Array(32)) }, 'ERR_ATTESTATION_NONCE_MISMATCH');
  add('expected: maxAgeMs exceeded', doc, { currentDateMs: entry.timestamp_ms! + 60_001, maxAgeMs: 60_000 }, 'ERR_ATTESTATION_STALE');
  add('expected: from the future', doc, { currentDateMs: entry.timestamp_ms! - 1500, maxAgeMs: 60_000, clockToleranceMs: 1000 }, 'ERR_ATTESTATION_STALE');
  add('expected: other trust anchor', doc, { ...at, trustAnchors: ['00'.repeat(32)] }, 'ERR_ATTESTATION_UNTRUSTED_ROOT');
  const rootPem = fixtureText('nitro', 'aws-nitro-root.pem');
  add('expected: AWS root given as DER', doc, { ...at, trustAnchors: [rootPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')] }, 'ok ');

  // A forged chain with AWS's names.
  const aws = [['C', 'US'], ['O', 'Amazon'], ['OU', 'AWS']] as const;
  const fake = createTestPki({ currentDate: new Date(entry.timestamp_ms!), names: { root: [...aws, ['CN', 'aws.nitro-enclaves']] } });
  const fakeLeaf = fake.issueLeaf(new Date(entry.timestamp_ms! - 3000));
  const forged = new Map(payload);
  forged.set('certificate', fakeLeaf.der);
  forged.set('cabundle', [...fake.cabundle]);
  add('forged: self-made CA with AWS names', signCoseSign1(encodeCbor(forged), fakeLeaf.privateKey), at, 'ERR_ATTESTATION_UNTRUSTED_ROOT');

  // COSE working group vectors, through the COSE layer with each vector's own key.
  for (const dir of readdirSync(join(fixturesDir, 'cose'))) {
    for (const file of readdirSync(join(fixturesDir, 'cose', dir))) {
      const v = JSON.parse(fixtureText('cose', dir, file)) as { fail?: boolean; input: { sign0?: { key: Record<string, string> } }; output: { cbor: string } };
      const key = v.input.sign0?.key;
      if (!key) continue;
      const url = (hex: string | undefined) => (hex === undefined ? undefined : Buffer.from(hex, 'hex').toString('base64url'));
      const jwk = { kty: key.kty!, crv: key.crv!, x: key.x ?? url(key.x_hex)!, y: key.y ?? url(key.y_hex)! };
      const expect = file === 'ecdsa-sig-02.json' ? 'ok' : v.fail ? 'ERR_ATTESTATION_' : '';
      cases.push({ name: `cose: ${dir}/${file}`, kind: 'cose', doc: Buffer.from(v.output.cbor, 'hex').toString('base64'), jwk, expect });
    }
  }
}
