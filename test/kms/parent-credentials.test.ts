import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { fetchParentFile, fromParentCredentials } from '../../src/kms/parent-credentials.js';
import { connectSocket, type SocketAddress } from '../../src/vsock/index.js';
import { rawListen } from '../vsock/native-helpers.js';

// The enclave's client of the parent's credentials server. The parent is the adversary: these
// stand-ins answer whatever a hostile or broken parent could (on AF_UNIX, never vsock).
const tmp = mkdtempSync(join(tmpdir(), 'nes-parent-client-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY';
const TOKEN = 'IQoJb3JpZ2luX2VjSESSIONTOKEN';

interface StandIn {
  address: SocketAddress;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Request lines received so far. */
  readonly requests: string[];
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

let count = 0;
/** A parent that reads one request line and lets `answer` decide what to do with the socket. */
async function parent(answer: (request: string, socket: Socket) => void): Promise<StandIn> {
  const path = join(tmp, `parent-${++count}.sock`);
  const requests: string[] = [];
  let connections = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections++;
    socket.on('error', () => {});
    socket.on('end', () => socket.destroy()); // the client gave up (a timeout): let close() finish
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const at = text.indexOf('\n');
      if (at < 0) return;
      const request = text.slice(0, at);
      text = '\0'; // answer once
      requests.push(request);
      answer(request, socket);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(path, r));
  return {
    address: { family: 'unix', path },
    get connections() {
      return connections;
    },
    requests,
  };
}

const json = (body: unknown) => (_: string, socket: Socket) => socket.end(JSON.stringify(body));

async function failure(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a failure');
}

/** Everything an error shows: message, stack and the chain of causes. */
function shown(err: unknown): string {
  const parts: string[] = [];
  for (let e = err as { message?: string; stack?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) parts.push(String(e.message), String(e.stack), JSON.stringify(e));
  return parts.join('\n');
}

describe('fromParentCredentials', () => {
  it('asks once, caches, and fetches again refreshBeforeMs before expiry', async () => {
    let expiration = new Date('2030-01-01T12:00:00Z');
    let served = 0;
    const p = await parent((_, socket) => socket.end(JSON.stringify({ AccessKeyId: 'ASIAPARENTROLE000001', SecretAccessKey: `${SECRET}-${++served}`, SessionToken: TOKEN, Expiration: expiration.toISOString() })));
    let now = new Date('2030-01-01T11:00:00Z');
    const provider = fromParentCredentials({ address: p.address, clock: () => now, refreshBeforeMs: 60_000 });
    const first = await provider();
    expect(first).toEqual({ accessKeyId: 'ASIAPARENTROLE000001', secretAccessKey: `${SECRET}-1`, sessionToken: TOKEN, expiration });
    now = new Date('2030-01-01T11:58:59Z'); // 61 s before expiry: still fresh
    expect(await provider()).toBe(first);
    expect(p.requests).toEqual(['GET credentials']);
    now = new Date('2030-01-01T11:59:00Z'); // exactly refreshBeforeMs before expiry: refresh
    expiration = new Date('2030-01-01T13:00:00Z');
    const second = await provider();
    expect(second.secretAccessKey).toBe(`${SECRET}-2`);
    expect(second.expiration).toEqual(expiration);
    expect(await provider()).toBe(second);
    expect(p.connections).toBe(2);
  });

  it('defaults to refreshing 5 minutes before expiry', async () => {
    const expiration = new Date('2030-01-01T12:00:00Z');
    const p = await parent(json({ AccessKeyId: 'ASIA0000000000000001', SecretAccessKey: SECRET, Expiration: expiration.toISOString() }));
    let now = new Date('2030-01-01T11:54:59Z');
    const provider = fromParentCredentials({ address: p.address, clock: () => now });
    await provider();
    await provider();
    expect(p.connections).toBe(1);
    now = new Date('2030-01-01T11:55:00Z');
    await provider();
    expect(p.connections).toBe(2);
  });

  it('shares one fetch among concurrent callers, at start and at refresh', async () => {
    let served = 0;
    let now = new Date('2030-01-01T11:00:00Z');
    const p = await parent((_, socket) => {
      const n = ++served;
      // Answer late, so that every caller is waiting on the same fetch.
      setTimeout(() => socket.end(JSON.stringify({ AccessKeyId: 'ASIA0000000000000001', SecretAccessKey: `${SECRET}-${n}`, Expiration: `2030-01-01T1${n + 1}:00:00Z` })), 50);
    });
    const provider = fromParentCredentials({ address: p.address, clock: () => now });
    const first = await Promise.all(Array.from({ length: 8 }, () => provider()));
    expect(p.connections).toBe(1);
    expect(new Set(first).size).toBe(1);
    now = new Date('2030-01-01T11:58:00Z');
    const second = await Promise.all(Array.from({ length: 8 }, () => provider()));
    expect(p.connections).toBe(2);
    expect(second.every((c) => c.secretAccessKey === `${SECRET}-2`)).toBe(true);
  });

  it('keeps credentials without an expiry', async () => {
    const p = await parent(json({ AccessKeyId: 'AKIA0000000000000001', SecretAccessKey: SECRET }));
    const provider = fromParentCredentials({ address: p.address });
    expect(await provider()).toEqual({ accessKeyId: 'AKIA0000000000000001', secretAccessKey: SECRET });
    await provider();
    expect(p.connections).toBe(1);
  });

  it('fetches again after a failed fetch', async () => {
    let n = 0;
    const p = await parent((_, socket) => (++n === 1 ? socket.destroy() : socket.end(JSON.stringify({ AccessKeyId: 'ASIA0000000000000001', SecretAccessKey: SECRET }))));
    const provider = fromParentCredentials({ address: p.address });
    expect((await failure(provider())).code).toBe('ERR_PARENT_REFUSED');
    expect((await provider()).secretAccessKey).toBe(SECRET);
  });

  it('ERR_PARENT_TIMEOUT when the parent accepts and never answers', async () => {
    const p = await parent(() => {});
    const err = await failure(fromParentCredentials({ address: p.address, timeoutMs: 100 })());
    expect(err).toMatchObject({ name: 'NitroEnclaveError', code: 'ERR_PARENT_TIMEOUT', message: "the parent's credentials server did not answer within 100 ms" });
  });

  it('ERR_PARENT_TIMEOUT when the connection is not accepted in time (the vsock timeout is the cause)', async () => {
    const path = join(tmp, 'full.sock');
    const listener = await rawListen(path); // never accepts; fill its backlog so that connects wait
    const fillers = [];
    try {
      for (let i = 0; i < 4; i++) fillers.push(await connectSocket({ family: 'unix', path }, { timeoutMs: 200 }).catch((e: Error) => e));
      const err = await failure(fromParentCredentials({ address: { family: 'unix', path }, timeoutMs: 300 })());
      expect(err).toMatchObject({ code: 'ERR_PARENT_TIMEOUT', message: "the parent's credentials server did not accept the connection within 300 ms" });
      expect((err.cause as { code?: string }).code).toBe('ERR_VSOCK_TIMEOUT');
    } finally {
      for (const f of fillers) if (!(f instanceof Error)) f.destroy();
      listener.close();
    }
  });

  it('ERR_PARENT_REFUSED when the parent closes without an answer (a refused CID), however the close lands', async () => {
    const resets = await parent((_, socket) => socket.destroy());
    const ends = await parent((_, socket) => socket.end());
    for (const p of [resets, ends]) {
      const err = await failure(fromParentCredentials({ address: p.address })());
      expect(err.code).toBe('ERR_PARENT_REFUSED');
      expect(err.message).toMatch(/^the parent's credentials server closed the connection.*was this enclave's CID refused\?/);
      expect((await failure(fetchParentFile('tsk', { address: p.address }))).code).toBe('ERR_PARENT_REFUSED');
    }
  });

  it('ERR_PARENT_UNREACHABLE when nothing listens', async () => {
    const err = await failure(fromParentCredentials({ address: { family: 'unix', path: join(tmp, 'nobody.sock') } })());
    expect(err.code).toBe('ERR_PARENT_UNREACHABLE');
    expect((err.cause as { code?: string }).code).toBe('ERR_VSOCK_CONNECT');
  });

  it('ERR_PARENT_PROTOCOL for garbage, oversize answers and missing or malformed fields, never quoting the answer', async () => {
    const answers: Array<[string, string | Uint8Array]> = [
      ['not JSON', `AccessKeyId=ASIA SecretAccessKey=${SECRET}`],
      ['truncated JSON', `{"AccessKeyId":"ASIA0000000000000001","SecretAccessKey":"${SECRET}"`],
      ['no access key', JSON.stringify({ SecretAccessKey: SECRET, SessionToken: TOKEN })],
      ['empty secret', JSON.stringify({ AccessKeyId: 'ASIA0000000000000001', SecretAccessKey: '', SessionToken: TOKEN })],
      ['array', JSON.stringify([SECRET])],
      ['bad token', JSON.stringify({ AccessKeyId: 'ASIA0000000000000001', SecretAccessKey: SECRET, SessionToken: 7 })],
      ['bad expiration', JSON.stringify({ AccessKeyId: 'ASIA0000000000000001', SecretAccessKey: SECRET, SessionToken: TOKEN, Expiration: 'soon' })],
      ['over 64 KiB', JSON.stringify({ AccessKeyId: 'ASIA0000000000000001', SecretAccessKey: SECRET, SessionToken: TOKEN.repeat(3000) })],
    ];
    for (const [what, body] of answers) {
      const p = await parent((_, socket) => socket.end(body));
      const err = await failure(fromParentCredentials({ address: p.address })());
      expect(err.code, what).toBe('ERR_PARENT_PROTOCOL');
      expect(shown(err), what).not.toContain(SECRET);
      expect(shown(err), what).not.toContain(TOKEN);
    }
  });

  it('rejects bad options with a TypeError', () => {
    expect(() => fromParentCredentials({ timeoutMs: -1 })).toThrow(new TypeError('timeoutMs must be a non-negative integer of milliseconds'));
    expect(() => fromParentCredentials({ refreshBeforeMs: 1.5 })).toThrow(new TypeError('refreshBeforeMs must be a non-negative integer of milliseconds'));
  });
});

describe('fetchParentFile', () => {
  it('returns the bytes the parent offers', async () => {
    const p = await parent(json({ Name: 'tsk', Data: Buffer.from([0, 1, 2, 255]).toString('base64') }));
    expect(await fetchParentFile('tsk', { address: p.address })).toEqual(new Uint8Array([0, 1, 2, 255]));
    expect(p.requests).toEqual(['GET file tsk']);
  });

  it('ERR_PARENT_NOT_FOUND for a file the parent does not offer', async () => {
    const p = await parent(json({ Error: 'NotFound' }));
    await expect(fetchParentFile('tsk', { address: p.address })).rejects.toMatchObject({ code: 'ERR_PARENT_NOT_FOUND', message: 'the parent does not offer file "tsk"' });
  });

  it('ERR_PARENT_PROTOCOL for an answer without base64 data; ERR_PARENT_TIMEOUT when silent', async () => {
    for (const body of [{ Name: 'tsk' }, { Data: 'not base64!' }, { Error: 'Something else' }, 'text']) {
      const p = await parent((_, socket) => socket.end(typeof body === 'string' ? body : JSON.stringify(body)));
      await expect(fetchParentFile('tsk', { address: p.address })).rejects.toMatchObject({ code: 'ERR_PARENT_PROTOCOL' });
    }
    const silent = await parent(() => {});
    await expect(fetchParentFile('tsk', { address: silent.address, timeoutMs: 100 })).rejects.toMatchObject({ code: 'ERR_PARENT_TIMEOUT' });
  });

  it('rejects a bad file name with a TypeError before connecting', async () => {
    const p = await parent(json({}));
    for (const name of ['', '../etc/passwd', 'a b', 'x'.repeat(65)]) await expect(fetchParentFile(name, { address: p.address })).rejects.toThrow(TypeError);
    expect(p.connections).toBe(0);
  });
});
