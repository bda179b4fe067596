import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Runs a snippet against the built package in a process where the addon cannot be found. */
function withoutAddon(snippet: string): Record<string, unknown> {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', snippet], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NITRO_ENCLAVE_NATIVE: join(root, 'build', 'no-such-addon.node') },
  });
  return JSON.parse(out) as Record<string, unknown>;
}

describe('without the native helper', () => {
  it('NSM and vsock fail with ERR_NATIVE_UNAVAILABLE explaining how to build; the rest works', () => {
    const r = withoutAddon(`
      const { openNsm } = await import('nitro-enclave-sdk/nsm');
      const { connectVsock } = await import('nitro-enclave-sdk/vsock');
      const { verifyAttestationDocument } = await import('nitro-enclave-sdk/attestation');
      const { createSimulatedEnclave, createSimulatedNsm } = await import('nitro-enclave-sdk/testing');
      const out = {};
      try { openNsm(); } catch (e) { out.nsm = [e.code, e.message]; }
      try { await connectVsock({ port: 8000 }); } catch (e) { out.vsock = [e.code]; }
      const enclave = createSimulatedEnclave();
      const nsm = openNsm({ transport: createSimulatedNsm(enclave) });
      const doc = await nsm.attestation({ nonce: new Uint8Array([1]) });
      out.verified = (await verifyAttestationDocument(doc, { trustAnchors: [enclave.trustAnchor] })).verified;
      console.log(JSON.stringify(out));
    `);
    expect(r.nsm).toEqual(['ERR_NATIVE_UNAVAILABLE', expect.stringContaining('npm rebuild nitro-enclave-sdk')]);
    expect(r.vsock).toEqual(['ERR_NATIVE_UNAVAILABLE']);
    expect(r.verified).toBe(true);
  });
});
