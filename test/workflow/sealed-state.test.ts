import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TrustedSessionKey } from '../../src/kms/trusted-session-key.js';
import { newChainId, openState, peekStateBinding, sealState, type ExpectedBinding } from '../../src/workflow/index.js';

const meta = { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/tsk', pcr0: 'aa'.repeat(48), moduleId: 'i-0-enc0', obtainedAt: new Date(0) };
const newKey = () => new TrustedSessionKey(randomBytes(32), meta);
const CHAIN = newChainId();
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
function code(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code ?? `${(err as Error).name}: ${(err as Error).message}`;
  }
  return 'no error';
}

// A three-agent chain, research → analysis → report, in two workflows; the "host" holds only the sealed bytes.
describe('sealed agent state, bound to workflow, step and producer', () => {
  const tsk = newKey();
  const wf = (workflowId: string) => ({
    input: sealState(tsk, enc(`question of ${workflowId}`), { chainId: CHAIN, workflowId, activity: 'research', seq: 0, producer: 'client' }),
    afterResearch: sealState(tsk, enc(`notes of ${workflowId}`), { chainId: CHAIN, workflowId, activity: 'analysis', seq: 1, producer: 'research' }),
    afterAnalysis: sealState(tsk, enc(`analysis of ${workflowId}`), { chainId: CHAIN, workflowId, activity: 'report', seq: 2, producer: 'analysis' }),
  });
  const a = wf('wf-A');
  const b = wf('wf-B');
  const analysisOfA: ExpectedBinding = { chainId: CHAIN, workflowId: 'wf-A', activity: 'analysis', seq: 1, producer: 'research' };

  it('opens where it belongs, returning the authenticated binding', () => {
    const { plaintext, binding } = openState(tsk, a.afterResearch, analysisOfA);
    expect(dec(plaintext)).toBe('notes of wf-A');
    expect(binding).toEqual({ chainId: CHAIN, workflowId: 'wf-A', activity: 'analysis', seq: 1, producer: 'research' });
    expect(dec(openState(tsk, a.input, { chainId: CHAIN, workflowId: 'wf-A', activity: 'research', seq: 0, producer: ['client', 'gateway'] }).plaintext)).toBe('question of wf-A');
  });

  it('host replays workflow B’s state into workflow A: ERR_SEALED_WRONG_WORKFLOW', () => {
    expect(code(() => openState(tsk, b.afterResearch, analysisOfA))).toBe('ERR_SEALED_WRONG_WORKFLOW');
  });

  it('host reorders steps (an older or a later state at step 1): ERR_SEALED_WRONG_STEP', () => {
    const again = sealState(tsk, enc('notes, second round'), { chainId: CHAIN, workflowId: 'wf-A', activity: 'analysis', seq: 5, producer: 'research' });
    expect(code(() => openState(tsk, again, analysisOfA))).toBe('ERR_SEALED_WRONG_STEP');
    expect(code(() => openState(tsk, a.afterResearch, { ...analysisOfA, seq: 5 }))).toBe('ERR_SEALED_WRONG_STEP');
  });

  it('host hands the analysis agent a state meant for the report agent: ERR_SEALED_WRONG_AGENT', () => {
    expect(code(() => openState(tsk, a.afterAnalysis, { ...analysisOfA, seq: 2 }))).toBe('ERR_SEALED_WRONG_AGENT');
  });

  it('host skips an agent (the client input straight to analysis): ERR_SEALED_WRONG_PRODUCER', () => {
    const skipped = sealState(tsk, enc('raw input'), { chainId: CHAIN, workflowId: 'wf-A', activity: 'analysis', seq: 1, producer: 'client' });
    expect(code(() => openState(tsk, skipped, analysisOfA))).toBe('ERR_SEALED_WRONG_PRODUCER');
  });

  it('host rewrites the clear binding to pass a check: the tag fails, no field is named', () => {
    // Same length: "wf-B" → "wf-A" in the clear header of B's state.
    const forged = Uint8Array.from(b.afterResearch);
    const at = Buffer.from(forged).indexOf('wf-B');
    forged.set(enc('wf-A'), at);
    expect(peekStateBinding(forged).workflowId).toBe('wf-A'); // the clear header now lies...
    expect(code(() => openState(tsk, forged, analysisOfA))).toBe('ERR_SEALED_DECRYPT_FAILED'); // ...and is not believed
    const reseq = Uint8Array.from(a.afterAnalysis);
    reseq[3 + 2 + 4 + 16 + 2 + 6 + 7]! = 1; // seq 2 → 1 in the clear header
    expect(peekStateBinding(reseq).seq).toBe(1);
    expect(code(() => openState(tsk, reseq, { ...analysisOfA, activity: 'report' }))).toBe('ERR_SEALED_DECRYPT_FAILED');
  });

  it('host splices B’s ciphertext behind A’s header: ERR_SEALED_DECRYPT_FAILED', () => {
    const headerA = a.afterResearch.subarray(0, 3 + ((a.afterResearch[1]! << 8) | a.afterResearch[2]!));
    const envB = b.afterResearch.subarray(headerA.length);
    expect(code(() => openState(tsk, new Uint8Array([...headerA, ...envB]), analysisOfA))).toBe('ERR_SEALED_DECRYPT_FAILED');
  });

  it('host truncates or corrupts the state: coded errors, never a crash', () => {
    const s = a.afterResearch;
    for (const n of [0, 1, 2, 3, 10, 30, 60, s.length - 17, s.length - 1]) {
      expect(['ERR_SEALED_MALFORMED', 'ERR_SEALED_DECRYPT_FAILED']).toContain(code(() => openState(tsk, s.subarray(0, n), analysisOfA)));
    }
    const flipped = Uint8Array.from(s);
    flipped[s.length - 20]! ^= 1;
    expect(code(() => openState(tsk, flipped, analysisOfA))).toBe('ERR_SEALED_DECRYPT_FAILED');
    const format = Uint8Array.from(s);
    format[0] = 9;
    expect(code(() => openState(tsk, format, analysisOfA))).toBe('ERR_SEALED_MALFORMED');
  });

  it('a plain tsk.encrypt() envelope is not a sealed state, even with the same bytes around it', () => {
    const header = a.afterResearch.subarray(0, a.afterResearch.length - (33 + 13 + 16));
    const plain = tsk.encrypt(enc('notes of wf-A'), header);
    expect(code(() => openState(tsk, new Uint8Array([...header, ...plain]), analysisOfA))).toBe('ERR_SEALED_DECRYPT_FAILED');
    // (the attacks with every crafted AAD are in test/workflow/domains.test.ts)
  });

  it('zeroes the plaintext it refuses', () => {
    // Watch every fill() on a buffer of the plaintext's length: the refused plaintext must be zeroed.
    const seen: Uint8Array[] = [];
    const fill = Uint8Array.prototype.fill;
    Uint8Array.prototype.fill = function (this: Uint8Array, ...args: Parameters<typeof fill>) {
      if (this.length === enc('notes of wf-B').length) seen.push(this);
      return fill.apply(this, args) as never;
    };
    try {
      expect(code(() => openState(tsk, b.afterResearch, analysisOfA))).toBe('ERR_SEALED_WRONG_WORKFLOW');
    } finally {
      Uint8Array.prototype.fill = fill;
    }
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((b) => b.every((x) => x === 0))).toBe(true);
  });
});

describe('keys and key rings', () => {
  const binding = { chainId: CHAIN, workflowId: 'wf', activity: 'analysis', seq: 1, producer: 'research' };
  const expectHere: ExpectedBinding = { ...binding };

  it('seals with the first key of a ring and opens with any key in it (rotation)', () => {
    const old = newKey();
    const current = newKey();
    const sealedOld = sealState(old, enc('old'), binding);
    const sealedNew = sealState([current, old], enc('new'), binding);
    const envelopeAt = sealedNew.length - (33 + 3 + 16);
    expect(Buffer.from(sealedNew.subarray(envelopeAt + 1, envelopeAt + 9)).toString('hex')).toBe(current.metadata.keyId);
    expect(dec(openState([current, old], sealedOld, expectHere).plaintext)).toBe('old');
    expect(dec(openState([current, old], sealedNew, expectHere).plaintext)).toBe('new');
    expect(code(() => openState(current, sealedOld, expectHere))).toBe('ERR_SEALED_WRONG_KEY');
    expect(code(() => openState([newKey()], sealedNew, expectHere))).toBe('ERR_SEALED_WRONG_KEY');
  });

  it('refuses bad options with TypeError, and a disposed key with ERR_TSK_DISPOSED', () => {
    const k = newKey();
    const sealed = sealState(k, enc('x'), binding);
    expect(() => sealState(k, enc('x'), { ...binding, seq: -1 })).toThrow(TypeError);
    expect(() => sealState(k, enc('x'), { ...binding, workflowId: '' })).toThrow(TypeError);
    expect(() => sealState(k, enc('x'), { ...binding, producer: 'x'.repeat(1025) })).toThrow(TypeError);
    expect(() => sealState(k, enc('x'), { ...binding, activity: '\ud800' })).toThrow(TypeError);
    expect(() => sealState([], enc('x'), binding)).toThrow(TypeError);
    expect(() => openState(k, sealed, { ...expectHere, producer: [] })).toThrow(TypeError);
    expect(() => openState(k, sealed, { chainId: CHAIN, workflowId: 'wf', activity: 'analysis', seq: 1 } as never)).toThrow(TypeError);
    k.dispose();
    expect(code(() => openState(k, sealed, expectHere))).toBe('ERR_TSK_DISPOSED');
  });

  it('carries unicode ids and large step numbers exactly', () => {
    const k = newKey();
    const b = { chainId: CHAIN, workflowId: 'commande-été-🚀', activity: 'анализ', seq: Number.MAX_SAFE_INTEGER, producer: '研究' };
    expect(openState(k, sealState(k, enc('x'), b), b).binding).toEqual(b);
  });
});
