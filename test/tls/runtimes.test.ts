// issue 20 §2: Deno and Bun clients through their own node:tls. Both run the https agent and
// connectAttested unchanged; Deno's node:tls has no exportKeyingMaterial, so the per-session
// check fails closed there with ERR_TLS_ATTESTATION_SESSION. Runs the built package (npm run build).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testImagePcr } from '../../src/testing/index.js';
import { createAttestedHttpsServer } from '../../src/tls/index.js';
import { attestedEnclave, close, hex, listen } from './helpers.js';

const root = join(import.meta.dirname, '..', '..');
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
const script = join(import.meta.dirname, 'runtime-client.mjs');
const RUNTIMES: Record<string, string[]> = {
  node: [process.execPath, script],
  deno: [bin('deno'), 'run', '--quiet', '--no-prompt', '--no-config', '--no-lock', '--allow-net=127.0.0.1', '--allow-env=RT_INPUT', `--allow-read=${root}`, script],
  bun: [bin('bun'), 'run', '--silent', script],
};

let input = '';
let stop: () => Promise<void>;
let pcr0 = '';
const wrongPcr = hex(testImagePcr('other'));

beforeAll(async () => {
  const e = await attestedEnclave('service');
  pcr0 = e.pcr0;
  const { server, port } = await listen(createAttestedHttpsServer(e.identity, (_q, r) => r.end('hi')));
  stop = () => close(server);
  input = JSON.stringify({ port, pcr0, anchor: Buffer.from(e.trustAnchors[0]!).toString('base64'), wrongPcr, dist: join(root, 'dist') });
});
afterAll(() => stop?.());

function run(cmd: string[]): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { env: { ...process.env, RT_INPUT: input, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as Record<string, string>);
      } catch {
        reject(new Error(`${cmd[0]} exited ${code}: ${out.slice(-500)} ${err.slice(-1500)}`));
      }
    });
  });
}

for (const [name, cmd] of Object.entries(RUNTIMES)) {
  describe.skipIf(!existsSync(cmd[0]!))(`attested clients in ${name}`, () => {
    it('the https agent and connectAttested accept the right image (or one of several) and refuse another', async () => {
      const out = await run(cmd);
      expect(out.agent).toBe('ok hi');
      expect(out.agentAlternatives).toBe('ok hi');
      expect(out.agentWrongImage).toBe(`ERR_TLS_ATTESTATION_PCR_MISMATCH the peer's attestation refused: ERR_ATTESTATION_PCR_MISMATCH: PCR0 mismatch: expected ${wrongPcr}, document has ${pcr0}`);
      expect(out.connectAttested).toBe('ok true');
      if (name === 'deno') {
        expect(out.agentSessionCheck).toBe("ERR_TLS_ATTESTATION_SESSION the session attestation cannot be checked: this runtime's node:tls has no exportKeyingMaterial (RFC 5705)");
      } else {
        expect(out.agentSessionCheck).toBe('ok hi');
      }
    }, 120_000);
  });
}
