import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchParentFile, fromParentCredentials } from '../../src/kms/parent-credentials.js';
import { serveParentCredentials, type CredentialsServerOptions } from '../../src/parent/credentials-server.js';
import { listenSocket, type ListenOptions, type SocketAddress } from '../../src/vsock/index.js';
import { runShimmedChild } from '../native/preload.js';

// The parent's credentials server, over AF_UNIX stand-ins only (never AF_VSOCK on this machine).
const tmp = mkdtempSync(join(tmpdir(), 'nes-parent-server-'));
const shim = join(tmp, 'accept-shim.so');
beforeAll(() => {
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-Wall', '-o', shim, join(import.meta.dirname, '..', 'native', 'accept-shim.c'), '-ldl']);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SECRET = 'parent-secret-access-key-value';
const TOKEN = 'parent-session-token-value';
const role = async () => ({ accessKeyId: 'ASIAPARENTROLE000001', secretAccessKey: SECRET, sessionToken: TOKEN, expiration: new Date('2030-01-01T12:00:00Z') });

let count = 0;
const unixPath = () => join(tmp, `server-${++count}.sock`);

/** Connects like a stranger would and returns what the server said before closing. */
function talk(path: string, request: string): Promise<string> {
  return new Promise((resolve) => {
    const c = connect(path);
    let text = '';
    c.on('data', (d) => (text += d));
    c.on('error', () => resolve(text));
    c.on('close', () => resolve(text));
    c.write(request);
  });
}

describe('serveParentCredentials', () => {
  it('serves credentials and files to an accepted peer, answers NotFound otherwise, and never logs a secret', async () => {
    const path = unixPath();
    const address: SocketAddress = { family: 'unix', path };
    const logs: string[] = [];
    const server = await serveParentCredentials({ address, allowPeer: () => true, credentials: role, files: { tsk: new Uint8Array([1, 2, 3]) }, log: (l) => logs.push(l) });
    try {
      expect(await fromParentCredentials({ address })()).toEqual({ accessKeyId: 'ASIAPARENTROLE000001', secretAccessKey: SECRET, sessionToken: TOKEN, expiration: new Date('2030-01-01T12:00:00Z') });
      expect(await fetchParentFile('tsk', { address })).toEqual(new Uint8Array([1, 2, 3]));
      await expect(fetchParentFile('other', { address })).rejects.toMatchObject({ code: 'ERR_PARENT_NOT_FOUND' });
      expect(JSON.parse(await talk(path, 'PUT credentials\n'))).toEqual({ Error: 'NotFound' });
    } finally {
      server.close();
    }
    expect(logs).toEqual([
      `listening on unix:${path}: any local process that can open this socket may connect and receive the credentials; a unix socket has no CID, so no CID check is made`,
      'served credentials for ASIA… to a local process (unix socket: no CID, no check), expiring 2030-01-01T12:00:00.000Z',
      'served file tsk (3 bytes) to a local process (unix socket: no CID, no check)',
      'unknown request from a local process (unix socket: no CID, no check)',
      'unknown request from a local process (unix socket: no CID, no check)',
    ]);
    expect(logs.join('\n')).not.toMatch(new RegExp(`${SECRET}|${TOKEN}|PARENTROLE`));
  });

  it('on a unix socket with enclaveCid, refuses every connection (no CID can match) and says so', async () => {
    const path = unixPath();
    const logs: string[] = [];
    const server = await serveParentCredentials({ address: { family: 'unix', path }, enclaveCid: 16, credentials: role, log: (l) => logs.push(l) });
    try {
      await expect(fromParentCredentials({ address: { family: 'unix', path } })()).rejects.toMatchObject({ code: 'ERR_PARENT_REFUSED' });
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      server.close();
    }
    expect(logs).toEqual([`listening on unix:${path}: a unix socket has no CID, so enclaveCid 16 can never match and every connection will be refused (pass allowPeer to accept local processes)`, 'refused a local process (unix socket)']);
  });

  it('needs enclaveCid (3 or more) or allowPeer', async () => {
    for (const enclaveCid of [undefined, 2, 16.5]) {
      await expect(serveParentCredentials({ address: { family: 'unix', path: unixPath() }, credentials: role, ...(enclaveCid === undefined ? {} : { enclaveCid }) })).rejects.toThrow(TypeError);
    }
  });

  it('on vsock, hands enclaveCid to the native listener as allowedCids; with allowPeer, not', async () => {
    const calls: Array<ListenOptions | undefined> = [];
    const listen: CredentialsServerOptions['listen'] = (_address, onConnection, options) => {
      calls.push(options);
      return listenSocket({ family: 'unix', path: unixPath() }, onConnection, options);
    };
    const vsock: SocketAddress = { family: 'vsock', cid: 0xffffffff, port: 8002 };
    (await serveParentCredentials({ address: vsock, enclaveCid: 16, credentials: role, listen })).close();
    (await serveParentCredentials({ address: vsock, allowPeer: (s) => s.peerCid === 16, credentials: role, listen })).close();
    expect(calls.map((o) => o?.allowedCids)).toEqual([[16], undefined]);
  });
});

async function runChild(mode: 'native' | 'js-only'): Promise<{ allowedCids: unknown[]; first: unknown; second: unknown; logs: string[] }> {
  const stdout = await runShimmedChild(join(import.meta.dirname, 'credentials-child.mjs'), [join(tmp, `child-${mode}.sock`), mode], shim, { ACCEPT_SHIM_CIDS: '17,16' });
  return JSON.parse(stdout) as never;
}

describe('serveParentCredentials against vsock peers (accept() shim reporting CIDs 17 then 16)', () => {
  it('the native listener refuses CID 17 before the relay starts; CID 16 gets the credentials', async () => {
    const r = await runChild('native');
    expect(r.allowedCids).toEqual([[16]]);
    expect(r.first).toEqual({ code: 'ERR_PARENT_REFUSED' });
    expect(r.second).toEqual({ secretAccessKey: 'child-secret-value' });
    expect(r.logs).toEqual([
      "listening on vsock port 8002: credentials only to CID 16 (each connection's peer CID is checked)",
      'refused a connection from CID 17: allowed CIDs are 16', // from the accept thread, not the JS check
      'served credentials for ASIA… to CID 16 (peer CID checked)',
    ]);
    expect(r.logs.join('\n')).not.toMatch(/child-secret-value|child-session-token/);
  });

  it('defence in depth: without the native check, the JS check still refuses CID 17', async () => {
    const r = await runChild('js-only');
    expect(r.first).toEqual({ code: 'ERR_PARENT_REFUSED' });
    expect(r.second).toEqual({ secretAccessKey: 'child-secret-value' });
    expect(r.logs).toContain('refused peer CID 17 (expected 16)');
  });
});
