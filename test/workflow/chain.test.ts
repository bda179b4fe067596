// A chain belongs to one run (issue 18 §3), and the small sealed-state items of issue 18 §4.
// Temporal reuses a workflow id once a run closes (and for cron and continue-as-new): the host plays
// run 1's states into run 2 of the same workflow id.
import { createCipheriv, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_INFO } from '../../src/errors.js';
import { connectSocket } from '../../src/vsock/index.js';
import { newChainId, openHandlerError, openState, peekStateBinding, sealState, type SealedActivityServer } from '../../src/workflow/index.js';
import { createSealedActivityClient, SealedActivityError } from '../../src/workflow/parent/client.js';
import { decodeError, encodeCallPrefix, FRAME, FrameReader } from '../../src/workflow/protocol.js';
import { codeOf, dec, enc, newKey, serve, tempDir } from './helpers.js';

const tsk = newKey();
const tmp = tempDir();
const path = join(tmp.dir, 'enclave.sock');
let server: SealedActivityServer;
beforeAll(() => {
  server = serve(path, tsk).server;
});
afterAll(async () => {
  await server.close();
  tmp.cleanup();
});

const syncCode = (f: () => unknown): string => {
  try {
    f();
    return 'no error';
  } catch (err) {
    return (err as { code?: string }).code ?? `${(err as Error).name}: ${(err as Error).message}`;
  }
};

/** One run of research → analysis: the starter seals the input with a fresh chain id, the enclave runs the steps. */
async function run(workflowId: string, brief: string) {
  const chainId = newChainId();
  const client = createSealedActivityClient({ address: { family: 'unix', path } });
  try {
    const input = sealState(tsk, enc(brief), { workflowId, chainId, activity: 'research', seq: 0, producer: 'client' });
    const notes = (await client.call({ activity: 'research', workflowId, seq: 0, state: input })).state;
    const report = (await client.call({ activity: 'analysis', workflowId, seq: 1, state: notes })).state;
    return { chainId, input, notes, report };
  } finally {
    await client.close();
  }
}
const finalStep = { activity: 'report', seq: 2, producer: 'analysis' };

describe('a chain belongs to one run of a workflow id', () => {
  it('the enclave copies the chain id forward: every state of a run carries the starter’s', async () => {
    const r = await run('wf-reused', 'run one');
    for (const s of [r.input, r.notes, r.report]) expect(peekStateBinding(s).chainId).toBe(r.chainId);
    expect(dec(openState(tsk, r.report, { workflowId: 'wf-reused', chainId: r.chainId, ...finalStep }).plaintext)).toBe('NOTES ON RUN ONE (wf wf-reused, step 1, from research)');
  });

  it('run 2’s starter refuses run 1’s final state: ERR_SEALED_WRONG_CHAIN', async () => {
    const run1 = await run('wf-reused', 'run one');
    const run2 = await run('wf-reused', 'run two');
    // The host hands run 2's starter the report of run 1 (same workflow id, same step): refused.
    expect(syncCode(() => openState(tsk, run1.report, { workflowId: 'wf-reused', chainId: run2.chainId, ...finalStep }))).toBe('ERR_SEALED_WRONG_CHAIN');
    try {
      openState(tsk, run1.report, { workflowId: 'wf-reused', chainId: run2.chainId, ...finalStep });
    } catch (err) {
      expect((err as Error).message).toBe(`state belongs to chain ${run1.chainId} of workflow "wf-reused" (another run), not ${run2.chainId}`);
    }
    expect(dec(openState(tsk, run2.report, { workflowId: 'wf-reused', chainId: run2.chainId, ...finalStep }).plaintext)).toContain('RUN TWO');
  });

  it('a run-1 state spliced into run 2 mid-chain keeps run 1’s chain id, so run 2’s end refuses it', async () => {
    const run1 = await run('wf-splice', 'run one');
    const run2 = await run('wf-splice', 'run two');
    const client = createSealedActivityClient({ address: { family: 'unix', path } });
    // Run 2's analysis step gets run 1's notes: the enclave accepts (mid-chain, any chain) ...
    const spliced = (await client.call({ activity: 'analysis', workflowId: 'wf-splice', seq: 1, state: run1.notes })).state;
    await client.close();
    // ... but seals the output for run 1's chain, which run 2's starter refuses.
    expect(peekStateBinding(spliced).chainId).toBe(run1.chainId);
    expect(syncCode(() => openState(tsk, spliced, { workflowId: 'wf-splice', chainId: run2.chainId, ...finalStep }))).toBe('ERR_SEALED_WRONG_CHAIN');
  });

  it('the chain id is authenticated: rewriting it in the clear binding fails the tag', async () => {
    const run1 = await run('wf-rewrite', 'run one');
    const run2Chain = newChainId();
    const forged = Uint8Array.from(run1.report);
    forged.set(Buffer.from(run2Chain, 'hex'), 3 + 2 + 'wf-rewrite'.length);
    expect(peekStateBinding(forged).chainId).toBe(run2Chain);
    expect(syncCode(() => openState(tsk, forged, { workflowId: 'wf-rewrite', chainId: run2Chain, ...finalStep }))).toBe('ERR_SEALED_DECRYPT_FAILED');
  });

  it('handler-error details carry the chain id too: openHandlerError checks it', async () => {
    const chainId = newChainId();
    const client = createSealedActivityClient({ address: { family: 'unix', path } });
    const state = sealState(tsk, enc('record 17'), { workflowId: 'wf-err', chainId, activity: 'boom', seq: 0, producer: 'client' });
    const err = (await client.call({ activity: 'boom', workflowId: 'wf-err', seq: 0, state }).catch((e: unknown) => e)) as SealedActivityError;
    await client.close();
    expect(openHandlerError(tsk, err.details!, { workflowId: 'wf-err', chainId, activity: 'boom', seq: 0 }).message).toContain('record 17');
    expect(syncCode(() => openHandlerError(tsk, err.details!, { workflowId: 'wf-err', chainId: newChainId(), activity: 'boom', seq: 0 }))).toBe('ERR_SEALED_WRONG_CHAIN');
  });

  it('the opener must say which chain: a chain id, or null (mid-chain only); anything else is a TypeError', () => {
    const chainId = newChainId();
    const s = sealState(tsk, enc('x'), { workflowId: 'wf', chainId, activity: 'a', seq: 0, producer: 'p' });
    expect(dec(openState(tsk, s, { workflowId: 'wf', chainId: null, activity: 'a', seq: 0, producer: 'p' }).plaintext)).toBe('x');
    for (const bad of [undefined, '', 'ABCDEF'.repeat(6).slice(0, 32), chainId.slice(2), 42]) {
      expect(() => openState(tsk, s, { workflowId: 'wf', chainId: bad as never, activity: 'a', seq: 0, producer: 'p' })).toThrow(TypeError);
      expect(() => sealState(tsk, enc('x'), { workflowId: 'wf', chainId: bad as never, activity: 'a', seq: 0, producer: 'p' })).toThrow(TypeError);
    }
    expect(newChainId()).toMatch(/^[0-9a-f]{32}$/);
    expect(newChainId(() => new Uint8Array(16).fill(0xab))).toBe('ab'.repeat(16));
    expect(() => newChainId(() => new Uint8Array(8))).toThrow(TypeError);
  });
});

describe('issue 18 §4: the small ones', () => {
  it('an empty workflow id in a CALL is ERR_ACTIVITY_FRAME_MALFORMED, not ERR_SEALED_DECRYPT_FAILED (it was before)', async () => {
    const state = sealState(tsk, enc('x'), { workflowId: 'wf', chainId: newChainId(), activity: 'research', seq: 0, producer: 'client' });
    const socket = await connectSocket({ family: 'unix', path });
    const reader = new FrameReader(1 << 20);
    const answer = new Promise<Buffer>((resolve) => socket.on('data', (c: Buffer) => reader.push(c).forEach((f) => f.type === FRAME.ERROR && resolve(f.body!))));
    socket.write(Buffer.concat([encodeCallPrefix(7, { activity: 'research', workflowId: '', seq: 0, attest: false, nonce: new Uint8Array(0) }, state.length), state]));
    const e = decodeError(await answer);
    socket.destroy();
    expect(e.code).toBe('ERR_ACTIVITY_FRAME_MALFORMED');
    expect(e.message).toBe('expect.workflowId must be a non-empty string');
    expect(() => openState(tsk, state, { workflowId: '', chainId: null, activity: 'research', seq: 0, producer: 'client' })).toThrow(new TypeError('expect.workflowId must be a non-empty string'));
  });

  it('a sealed state holding a v1 envelope is ERR_SEALED_MALFORMED, whatever its AAD (it opened before)', () => {
    const s = sealState(tsk, enc('x'), { workflowId: 'wf', chainId: newChainId(), activity: 'a', seq: 0, producer: 'p' });
    const prefix = s.subarray(0, 3 + ((s[1]! << 8) | s[2]!));
    const raw = (tsk as unknown as { keyObject: import('node:crypto').KeyObject }).keyObject.export();
    const label = enc('nitro-enclave-sdk/workflow/sealed-state');
    for (const aadTail of [Buffer.concat([enc('nitro-enclave-sdk/sealed-state/v1\0'), prefix]), Buffer.concat([Buffer.from([0, label.length]), label, prefix]), Buffer.from(prefix)]) {
      const nonce = randomBytes(12);
      const header = Buffer.concat([Buffer.from([1]), Buffer.from(tsk.metadata.keyId, 'hex'), nonce]);
      const c = createCipheriv('aes-256-gcm', raw, nonce);
      c.setAAD(Buffer.concat([header, aadTail]));
      const v1 = Buffer.concat([header, c.update(enc('old')), c.final(), c.getAuthTag()]);
      const sealed = new Uint8Array(Buffer.concat([prefix, v1]));
      expect(syncCode(() => openState(tsk, sealed, { workflowId: 'wf', chainId: null, activity: 'a', seq: 0, producer: 'p' }))).toBe('ERR_SEALED_MALFORMED');
    }
  });

  it('ERR_SEALED_WRONG_KEY is decided from the clear key id before authentication, and documented so', () => {
    const other = newKey();
    const s = sealState(tsk, enc('x'), { workflowId: 'wf', chainId: newChainId(), activity: 'a', seq: 0, producer: 'p' });
    const at = s.length - (33 + 1 + 16) + 1; // the envelope's key id
    const garbage = Uint8Array.from(s);
    garbage.fill(0x55, at + 8); // nonce, ciphertext and tag replaced: nothing authentic left
    garbage.set(Buffer.from(other.metadata.keyId, 'hex'), at);
    const expectAny = { workflowId: 'wf', chainId: null, activity: 'a', seq: 0, producer: 'p' };
    expect(syncCode(() => openState(tsk, garbage, expectAny))).toBe('ERR_SEALED_WRONG_KEY');
    garbage.set(Buffer.from(tsk.metadata.keyId, 'hex'), at);
    expect(syncCode(() => openState(tsk, garbage, expectAny))).toBe('ERR_SEALED_DECRYPT_FAILED');
    expect(ERROR_INFO.ERR_SEALED_WRONG_KEY.when).toContain('decided before authentication');
    expect(ERROR_INFO.ERR_TSK_WRONG_KEY.when).toContain('decided before authentication');
  });
});

void codeOf;
