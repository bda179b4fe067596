import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { defaultPayloadConverter } from '@temporalio/common';
import { payloadToJSON } from '@temporalio/common/lib/proto-utils.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCodecServer, createTskPayloadCodec, type CodecServerRequest } from '../../src/temporal/index.js';
import { forms, makeTsk } from './helpers.js';

const UI = 'https://temporal-ui.example.com';
const SECRET = 'patient 4711: positive';
const key = makeTsk();
const codec = createTskPayloadCodec({ keys: key.tsk });
const seen: CodecServerRequest[] = [];
let server: Server;
let base: string;

beforeAll(async () => {
  const handler = createCodecServer({
    codec,
    allowedOrigins: [UI],
    maxBodyBytes: 64 * 1024,
    authorize: (req) => {
      seen.push(req);
      const auth = req.headers.authorization;
      if (auth === 'Bearer throw') throw new Error('token service down');
      if (!auth) return 'unauthenticated';
      return auth === 'Bearer good' && req.namespace === 'agents';
    },
  });
  server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

/** Exactly what the Web UI's data encoder sends (passAccessToken and includeCredentials on). */
function uiHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return { Origin: UI, 'Content-Type': 'application/json', 'X-Namespace': 'agents', Authorization: 'Bearer good', 'Authorization-Extras': 'id-token', ...extra };
}

async function sealedJson(value: unknown) {
  const [p] = await codec.encode([defaultPayloadConverter.toPayload(value)]);
  return payloadToJSON(p!);
}

describe('createCodecServer: the Web UI and CLI over real HTTP', () => {
  it('answers the Web UI’s CORS preflight for an allowed origin, with credentials and its headers', async () => {
    const res = await fetch(`${base}/codec/decode`, {
      method: 'OPTIONS',
      headers: { Origin: UI, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,authorization-extras,content-type,x-namespace' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    const allowed = res.headers.get('access-control-allow-headers')!.toLowerCase().split(/,\s*/);
    expect(allowed).toEqual(expect.arrayContaining(['authorization', 'authorization-extras', 'x-namespace', 'content-type']));
    expect(res.headers.get('vary')).toContain('Origin');
  });

  it('decodes for the Web UI (POST with credentials): plaintext JSON payloads, CORS headers, X-Namespace seen by authorize', async () => {
    seen.length = 0;
    const body = JSON.stringify({ payloads: [await sealedJson({ note: SECRET })] });
    expect(body).not.toContain(Buffer.from(JSON.stringify({ note: SECRET })).toString('base64'));
    const res = await fetch(`${base}/api/namespaces/agents/decode`, { method: 'POST', headers: uiHeaders(), body, credentials: 'include' });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(UI);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const { payloads } = (await res.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
    expect(Buffer.from(payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
    expect(JSON.parse(Buffer.from(payloads[0]!.data, 'base64').toString())).toEqual({ note: SECRET });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ operation: 'decode', namespace: 'agents', origin: UI });
  });

  it('encodes for the CLI (no Origin): the result decodes back through the server', async () => {
    const plain = payloadToJSON(defaultPayloadConverter.toPayload('cli input'));
    const headers = { 'Content-Type': 'application/json', Authorization: 'Bearer good', 'X-Namespace': 'agents' };
    const enc = await fetch(`${base}/encode`, { method: 'POST', headers, body: JSON.stringify({ payloads: [plain] }) });
    expect(enc.status).toBe(200);
    expect(enc.headers.get('access-control-allow-origin')).toBeNull();
    const encoded = (await enc.json()) as { payloads: Array<{ metadata: Record<string, string> }> };
    expect(Buffer.from(encoded.payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('binary/encrypted');
    const dec = await fetch(`${base}/decode`, { method: 'POST', headers, body: JSON.stringify(encoded) });
    expect(((await dec.json()) as { payloads: unknown[] }).payloads).toEqual([plain]);
  });

  it('refuses an origin not on the list: no CORS headers, and authorize is never asked', async () => {
    seen.length = 0;
    const pre = await fetch(`${base}/decode`, { method: 'OPTIONS', headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' } });
    expect(pre.status).toBe(403);
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const res = await fetch(`${base}/decode`, { method: 'POST', headers: uiHeaders({ Origin: 'https://evil.example' }), body: JSON.stringify({ payloads: [await sealedJson(SECRET)] }) });
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(await res.text()).not.toContain(SECRET);
    expect(seen).toHaveLength(0);
  });

  it('401 without credentials, 403 when authorize refuses (wrong token or namespace), 500 when it throws; nothing decoded', async () => {
    const body = JSON.stringify({ payloads: [await sealedJson(SECRET)] });
    const noAuth = await fetch(`${base}/decode`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Namespace': 'agents' }, body });
    expect(noAuth.status).toBe(401);
    expect(noAuth.headers.get('www-authenticate')).toBe('Bearer');
    for (const headers of [uiHeaders({ Authorization: 'Bearer bad' }), uiHeaders({ 'X-Namespace': 'other' })]) {
      const res = await fetch(`${base}/decode`, { method: 'POST', headers, body });
      expect(res.status).toBe(403);
      expect(res.headers.get('access-control-allow-origin')).toBe(UI); // so the UI can show the refusal
      expect(await res.text()).not.toContain(SECRET);
    }
    const broken = await fetch(`${base}/decode`, { method: 'POST', headers: uiHeaders({ Authorization: 'Bearer throw' }), body });
    expect(broken.status).toBe(500);
    expect(await broken.text()).not.toContain('token service down');
  });

  it('400 for a repeated X-Namespace (Node would join it into "prod, dev") or Authorization, before authorize runs', async () => {
    const body = JSON.stringify({ payloads: [await sealedJson(SECRET)] });
    const { port } = new URL(base);
    const rawPost = (headerLines: string[]) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1');
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (d) => (text += d));
        socket.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]), text }));
        socket.on('error', reject);
        socket.end([`POST /decode HTTP/1.1`, 'Host: codec', 'Connection: close', 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`, ...headerLines, '', body].join('\r\n'));
      });
    const before = seen.length;
    const ns = await rawPost(['Authorization: Bearer good', 'X-Namespace: agents', 'X-Namespace: dev']);
    expect(ns.status).toBe(400);
    expect(ns.text).toContain('{"error":"BAD_REQUEST","message":"the x-namespace header appears more than once"}');
    const auth = await rawPost(['Authorization: Bearer good', 'Authorization: Bearer other', 'X-Namespace: agents']);
    expect(auth.status).toBe(400);
    expect(auth.text).toContain('the authorization header appears more than once');
    expect(seen.length).toBe(before); // authorize never saw them
    expect(ns.text + auth.text).not.toContain(SECRET);
    // One of each is served as before.
    expect((await rawPost(['Authorization: Bearer good', 'X-Namespace: agents'])).status).toBe(200);
  });

  it('400 on bad JSON, a wrong shape or a non-payload; 415 on another content type; 404/405 elsewhere', async () => {
    const post = (body: string, extra: Record<string, string> = {}, path = '/decode') => fetch(`${base}${path}`, { method: 'POST', headers: uiHeaders(extra), body });
    const bad = await post('{"payloads": [');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'BAD_REQUEST', message: 'body is not JSON' });
    expect((await post('{"payloads": "x"}')).status).toBe(400);
    expect((await post('{"payloads": [42]}')).status).toBe(400);
    expect((await post('{"payloads": []}', { 'Content-Type': 'text/plain' })).status).toBe(415);
    expect((await post('{"payloads": []}', {}, '/decode/x')).status).toBe(404);
    expect((await fetch(`${base}/decode`, { headers: uiHeaders() })).status).toBe(405);
  });

  it('400 with the codec’s code and key id when a payload cannot be decoded, without plaintext', async () => {
    const other = makeTsk();
    const [p] = await createTskPayloadCodec({ keys: other.tsk }).encode([defaultPayloadConverter.toPayload(SECRET)]);
    const res = await fetch(`${base}/decode`, { method: 'POST', headers: uiHeaders(), body: JSON.stringify({ payloads: [payloadToJSON(p!)] }) });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('ERR_CODEC_UNKNOWN_KEY');
    expect(body.message).toContain(other.tsk.metadata.keyId);
    for (const s of [SECRET, other.raw, key.raw]) for (const f of forms(s)) expect(JSON.stringify(body)).not.toContain(f);
  });

  it('413 over maxBodyBytes, whether the length is declared or the body is streamed', async () => {
    const huge = JSON.stringify({ payloads: [{ data: 'A'.repeat(100 * 1024) }] });
    const declared = await fetch(`${base}/decode`, { method: 'POST', headers: uiHeaders(), body: huge });
    expect(declared.status).toBe(413);
    // authorize answers before the body is read: an unauthenticated caller cannot make the server buffer anything
    const anonymous = await fetch(`${base}/decode`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: huge });
    expect(anonymous.status).toBe(401);
    // Chunked: no Content-Length, 1 MiB in 16 KiB chunks; the server answers once 64 KiB passed.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${base}/decode`, { method: 'POST', headers: uiHeaders({ 'Transfer-Encoding': 'chunked' }) }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(16 * 1024, 0x41);
      let sent = 0;
      const pump = () => {
        while (sent < 64) {
          sent++;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    expect(status).toBe(413);
  });

  it('authorize is required (a decrypting server is an oracle); other options are checked', () => {
    expect(() => createCodecServer({ codec } as never)).toThrow(/authorize is required/);
    expect(() => createCodecServer({ codec, authorize: () => true, allowedOrigins: ['https://ui.example.com/'] })).toThrow(TypeError);
    expect(() => createCodecServer({ codec, authorize: () => true, maxBodyBytes: 0 })).toThrow(TypeError);
    expect(() => createCodecServer({ codec: {} as never, authorize: () => true })).toThrow(TypeError);
  });
});
