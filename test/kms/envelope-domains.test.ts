// Plays enclave code that passes host-chosen AAD to tsk.encrypt / tsk.decrypt (issue 17 §5): with any
// AAD, the host must neither forge nor read a sealed state or a Temporal payload. On 0.2's first
// envelope v2 (AAD = header ‖ caller AAD, internal uses only a fixed AAD prefix) both attacks worked:
// `prefix ‖ tsk.encrypt(x, "nitro-enclave-sdk/sealed-state/v1\0" ‖ prefix)` opened as a sealed state,
// and `tsk.encrypt(payload, "nitro-enclave-sdk/temporal/payload")` decoded as a payload.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import proto from '@temporalio/proto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openInDomain, sealInDomain, TrustedSessionKey, TSK_ENVELOPE_DOMAINS, type TskEnvelopeDomain } from '../../src/kms/trusted-session-key.js';
import { createTskPayloadCodec } from '../../src/temporal/index.js';
import { newChainId, openState, sealState } from '../../src/workflow/index.js';

const meta = { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/tsk', pcr0: 'aa'.repeat(48), moduleId: 'i-0-enc0', obtainedAt: new Date(0) };
const enc = (s: string) => new TextEncoder().encode(s);
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const u16 = (n: number) => new Uint8Array([n >> 8, n & 0xff]);
const labelled = (label: string) => cat(u16(Buffer.byteLength(label)), enc(label));
const codeOf = (f: () => unknown): string => {
  try {
    f();
    return 'no error';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
};
async function asyncCodeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

const tsk = new TrustedSessionKey(randomBytes(32), meta);
const binding = { workflowId: 'wf', chainId: newChainId(), activity: 'analysis', seq: 1, producer: 'research' };
const real = sealState(tsk, enc('the real state'), binding);
const prefix = real.subarray(0, 3 + ((real[1]! << 8) | real[2]!));
const envelope = real.subarray(prefix.length);

// Every AAD an attacker would think of: the old fixed prefixes, each label in the new length-prefixed
// form, with and without the state's prefix, and the envelope's own header.
const crafted: Uint8Array[] = [
  new Uint8Array(0),
  prefix,
  cat(enc('nitro-enclave-sdk/sealed-state/v1\0'), prefix),
  enc('nitro-enclave-sdk/temporal/payload'),
  envelope.subarray(0, 33),
  ...Object.values(TSK_ENVELOPE_DOMAINS).flatMap((label) => [enc(label), labelled(label), cat(labelled(label), prefix)]),
  // Cancel out the encrypt label: what would follow it if the attacker could shorten it.
  cat(labelled(TSK_ENVELOPE_DOMAINS.encrypt).subarray(2), prefix),
];

describe('sealed state: tsk.encrypt / decrypt with any AAD', () => {
  it('the real state opens (control)', () => {
    expect(new TextDecoder().decode(openState(tsk, real, binding).plaintext)).toBe('the real state');
  });

  it('forging: prefix ‖ tsk.encrypt(x, crafted AAD) is refused as ERR_SEALED_DECRYPT_FAILED for every crafted AAD', () => {
    for (const aad of crafted) {
      expect(codeOf(() => openState(tsk, cat(prefix, tsk.encrypt(enc('host chose this'), aad)), binding))).toBe('ERR_SEALED_DECRYPT_FAILED');
    }
  });

  it('reading: tsk.decrypt(the state’s envelope, crafted AAD) fails for every crafted AAD', () => {
    for (const aad of crafted) expect(codeOf(() => tsk.decrypt(envelope, aad))).toBe('ERR_TSK_DECRYPT_FAILED');
  });

  it('property: no AAD forges or reads a sealed state', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.tuple(fc.constantFrom(...crafted), fc.uint8Array({ maxLength: 8 })).map(([a, b]) => cat(a, b)),
          fc.tuple(fc.constantFrom(...Object.values(TSK_ENVELOPE_DOMAINS)), fc.nat(0xffff)).map(([label, n]) => cat(u16(n), enc(label), prefix)),
        ),
        (aad) => {
          expect(codeOf(() => openState(tsk, cat(prefix, tsk.encrypt(enc('x'), aad)), binding))).toBe('ERR_SEALED_DECRYPT_FAILED');
          expect(codeOf(() => tsk.decrypt(envelope, aad))).toBe('ERR_TSK_DECRYPT_FAILED');
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('Temporal payload: tsk.encrypt / decrypt with any AAD', () => {
  const codec = createTskPayloadCodec({ keys: tsk });
  const inner = proto.temporal.api.common.v1.Payload.encode(defaultPayloadConverter.toPayload('forged')).finish();
  const asPayload = (data: Uint8Array): Payload => ({
    metadata: { encoding: enc('binary/encrypted'), 'encryption-key-id': enc(tsk.metadata.keyId), 'encryption-cipher': enc('tsk-v2') },
    data,
  });

  it('forging: tsk.encrypt(serialized payload, crafted AAD) is refused as ERR_CODEC_DECRYPT_FAILED', async () => {
    for (const aad of crafted) expect(await asyncCodeOf(codec.decode([asPayload(tsk.encrypt(inner, aad))]))).toBe('ERR_CODEC_DECRYPT_FAILED');
  });

  it('reading: tsk.decrypt(a payload’s data, crafted AAD) fails', async () => {
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload('secret')]);
    for (const aad of crafted) expect(codeOf(() => tsk.decrypt(sealed!.data!, aad))).toBe('ERR_TSK_DECRYPT_FAILED');
  });

  it('property: no AAD forges or reads a payload', async () => {
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload('secret')]);
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(...crafted)), async (aad) => {
        expect(await asyncCodeOf(codec.decode([asPayload(tsk.encrypt(inner, aad))]))).toBe('ERR_CODEC_DECRYPT_FAILED');
        expect(codeOf(() => tsk.decrypt(sealed!.data!, aad))).toBe('ERR_TSK_DECRYPT_FAILED');
      }),
      { numRuns: 300 },
    );
  });

  it('a sealed state’s envelope is not a payload, and a payload’s envelope is not a state', async () => {
    expect(await asyncCodeOf(codec.decode([asPayload(envelope)]))).toBe('ERR_CODEC_DECRYPT_FAILED');
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload('secret')]);
    expect(codeOf(() => openState(tsk, cat(prefix, sealed!.data!), binding))).toBe('ERR_SEALED_DECRYPT_FAILED');
  });
});

describe('every pair of domains (enumerated from TSK_ENVELOPE_DOMAINS)', () => {
  const names = Object.keys(TSK_ENVELOPE_DOMAINS) as TskEnvelopeDomain[];
  const sealIn = (d: TskEnvelopeDomain, data: Uint8Array) => (d === 'encrypt' ? tsk.encrypt(enc('x'), data) : sealInDomain(tsk, d, undefined, enc('x'), data));
  const openIn = (d: TskEnvelopeDomain, e: Uint8Array, data: Uint8Array) => (d === 'encrypt' ? tsk.decrypt(e, data) : openInDomain(tsk, d, e, data));

  it('an envelope opens in its own domain only, whatever the data on either side', () => {
    expect(names.length).toBeGreaterThanOrEqual(3);
    for (const from of names) {
      for (const to of names) {
        for (const data of [new Uint8Array(0), prefix, labelled(TSK_ENVELOPE_DOMAINS[to])]) {
          const e = sealIn(from, data);
          if (from === to) expect(new TextDecoder().decode(openIn(to, e, data))).toBe('x');
          else expect(codeOf(() => openIn(to, e, data)), `${from} → ${to}`).toBe('ERR_TSK_DECRYPT_FAILED');
        }
      }
    }
  });
});

describe('every internal use of the TSK in src/ has its own domain (enumerated from the source)', () => {
  const root = join(import.meta.dirname, '..', '..', 'src');
  const files = (readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).map((f) => join(root, f));
  const uses = new Map<string, Set<string>>();
  for (const file of files) {
    const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    for (const m of code.matchAll(/\b(?:sealInDomain|openInDomain)\(\s*\w+\s*,\s*'(\w+)'/g)) {
      if (!uses.has(m[1]!)) uses.set(m[1]!, new Set());
      uses.get(m[1]!)!.add(relative(root, file));
    }
  }

  it('each domain used is in TSK_ENVELOPE_DOMAINS, belongs to one module, and each internal domain is used', () => {
    const internal = Object.keys(TSK_ENVELOPE_DOMAINS).filter((d) => d !== 'encrypt');
    expect([...uses.keys()].sort()).toEqual(internal.sort());
    for (const [domain, modules] of uses) expect([...modules], domain).toHaveLength(1);
    expect(Object.fromEntries([...uses].map(([d, m]) => [d, [...m][0]]))).toEqual({ sealedState: 'workflow/sealed-state.ts', temporalPayload: 'temporal/payload-codec.ts' });
  });
});
