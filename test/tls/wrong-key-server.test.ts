// The test helper test/tls/wrong-key-server.ts checked against a client this project did not write:
// the OpenSSL command line. With the certificate's own key it is a TLS 1.3 server s_client completes
// a handshake with (and whose records then hold what s_client sent); with another key s_client
// refuses with OpenSSL's bad-signature error. runtimes.test.ts relies on both.
import { spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { attestedEnclave, close, listen } from './helpers.js';
import { createWrongKeyServer } from './wrong-key-server.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

/** Runs `openssl s_client` against `port`, with `ping\n` on its stdin. */
function sClient(port: number, extra: string[] = []): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...extra]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end('ping\n');
  });
}

async function serveOnce(certificate: Uint8Array, signingKey: KeyObject, extra: string[] = []) {
  const served = createWrongKeyServer({ certificate, signingKey });
  const { server, port } = await listen(served.server);
  try {
    const client = await sClient(port, extra);
    await served.settled();
    expect(served.connections).toHaveLength(1);
    return { client, connection: served.connections[0]! };
  } finally {
    await close(server);
  }
}

const ownKey = (identity: { tlsOptions(): { key: Buffer } }) => createPrivateKey(identity.tlsOptions().key);

describe.skipIf(!hasOpenssl)('the wrong-key TLS 1.3 test server, against openssl s_client', () => {
  it('signing with the certificate key (P-256 and P-384), it completes a TLS 1.3 handshake and reads what the client sends', async () => {
    for (const curve of ['P-256', 'P-384'] as const) {
      const { identity } = await attestedEnclave('helper', { curve });
      const { client, connection } = await serveOnce(identity.certificate, ownKey(identity));
      expect(client.status).toBe(0);
      expect(client.stdout).toContain('New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256');
      expect(client.stdout).toContain(`Peer signing digest: ${curve === 'P-256' ? 'SHA256' : 'SHA384'}`);
      expect(connection).toEqual({ serverHelloSent: true, alerts: [{ level: 1, description: 0, encrypted: true }], clientFinished: true, applicationData: Buffer.from('ping\n') });
      identity.close();
    }
  });

  it('signing with another key, OpenSSL refuses with bad signature (alert decrypt_error) and sends neither Finished nor data', async () => {
    const { identity } = await attestedEnclave('helper');
    const { client, connection } = await serveOnce(identity.certificate, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    expect(client.status).toBe(1);
    expect(client.stderr).toMatch(/:error:0A00007B:SSL routines:tls_process_cert_verify:bad signature:/);
    expect(connection).toEqual({ serverHelloSent: true, alerts: [{ level: 2, description: 51, encrypted: false }], clientFinished: false, applicationData: Buffer.alloc(0) });
    identity.close();
  });

  it('a ClientHello it cannot answer is recorded as such, not answered', async () => {
    const { identity } = await attestedEnclave('helper');
    const { client, connection } = await serveOnce(identity.certificate, ownKey(identity), ['-ciphersuites', 'TLS_AES_256_GCM_SHA384']);
    expect(client.status).toBe(1);
    expect(connection).toEqual({ serverHelloSent: false, alerts: [], clientFinished: false, applicationData: Buffer.alloc(0), error: 'ClientHello does not offer TLS_AES_128_GCM_SHA256' });
    identity.close();
  });
});

describe('the wrong-key TLS 1.3 test server options', () => {
  it('takes only an ECDSA P-256 or P-384 private key', () => {
    const certificate = new Uint8Array(1);
    const message = 'signingKey must be an ECDSA P-256 or P-384 private key';
    expect(() => createWrongKeyServer({ certificate, signingKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey })).toThrow(new TypeError(message));
    expect(() => createWrongKeyServer({ certificate, signingKey: generateKeyPairSync('ec', { namedCurve: 'P-521' }).privateKey })).toThrow(new TypeError(message));
    expect(() => createWrongKeyServer({ certificate, signingKey: generateKeyPairSync('ed25519').privateKey })).toThrow(new TypeError(message));
  });
});
