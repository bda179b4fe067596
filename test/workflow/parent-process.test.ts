import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { openState, sealState } from '../../src/workflow/index.js';
import { CHAIN, dec, enc, newKey, serve, tempDir } from './helpers.js';

const run = promisify(execFile);
const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('the parent side as a separate process without the key', () => {
  it('relays sealed states through Temporal activities and sees no plaintext', async () => {
    const tsk = newKey();
    const path = join(tmp.dir, 'enclave.sock');
    const { server } = serve(path, tsk);
    const secret = 'merger target: ACME';
    const state = sealState(tsk, enc(secret), { chainId: CHAIN, workflowId: 'wf-p', activity: 'research', seq: 0, producer: 'client' });
    const env = { PATH: process.env.PATH ?? '', ADDRESS_PATH: path, WORKFLOW_ID: 'wf-p', STATE_B64: Buffer.from(state).toString('base64') };
    const { stdout, stderr } = await run(process.execPath, [join(import.meta.dirname, 'parent-process.mjs')], { env, cwd: join(import.meta.dirname, '..', '..'), timeout: 60_000 });
    const out = JSON.parse(stdout) as { seen: string[]; refused: string; result: string };
    expect(out.seen).toEqual(['research#0 from client', 'analysis#1 from research']);
    expect(out.refused).toBe('ERR_SEALED_MALFORMED:true');
    for (const text of [stdout, stderr, JSON.stringify(env)]) {
      expect(text).not.toContain('ACME');
      expect(text.toUpperCase()).not.toContain('ACME');
    }
    const final = openState(tsk, new Uint8Array(Buffer.from(out.result, 'base64')), { chainId: CHAIN, workflowId: 'wf-p', activity: 'report', seq: 2, producer: 'analysis' });
    expect(dec(final.plaintext)).toBe(`NOTES ON ${secret.toUpperCase()} (wf wf-p, step 1, from research)`);
    await server.close();
  });
});
