import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { payloadToJSON } from '@temporalio/common/lib/proto-utils.js';
import { afterAll, describe, expect, it } from 'vitest';
import { createCodecServer, createTskPayloadCodec } from '../../src/temporal/index.js';
import { makeTsk } from './helpers.js';

// A real browser enforces CORS: headless Chromium loads a page from a "Web UI" origin and calls the
// codec server with credentials, as the Temporal Web UI does; a page from another origin tries the same.
const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log('codec server in a browser: skipped — headless Chromium (Debian package chromium) is not installed; .ci/run installs it');

const SECRET = 'browser-secret-58e1';
const codec = createTskPayloadCodec({ keys: makeTsk().tsk });
const posts: Array<{ origin: string | undefined; authorization: string | undefined }> = [];
const servers: Server[] = [];
let codecBase: string;
const tmp = mkdtempSync(join(tmpdir(), 'nes-chromium-'));

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const body = (req: IncomingMessage) => new Promise<string>((r) => { let s = ''; req.on('data', (c) => (s += c)); req.on('end', () => r(s)); });

/** A page server: serves the page that calls the codec server, and receives the page's report. */
async function pageServer(payloads: unknown): Promise<{ url: string; report: Promise<string> }> {
  let deliver!: (s: string) => void;
  const report = new Promise<string>((r) => (deliver = r));
  const url = await listen(
    createServer(async (req, res) => {
      if (req.method === 'POST' && req.url === '/report') {
        deliver(await body(req));
        res.end();
        return;
      }
      const script = `
        fetch(${JSON.stringify(`${codecBase}/api/v1/namespaces/agents/decode`)}, {
          method: 'POST', credentials: 'include',
          headers: { 'Content-Type': 'application/json', 'X-Namespace': 'agents', 'Authorization': 'Bearer good', 'Authorization-Extras': 'id-token' },
          body: ${JSON.stringify(JSON.stringify({ payloads }))},
        })
          .then(async (r) => 'status ' + r.status + ' ' + (await r.text()), (e) => 'blocked ' + e.name)
          .then((result) => fetch('/report', { method: 'POST', body: result }));`;
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(`<!doctype html><title>ui</title><script>${script}</script>`);
    }),
  );
  return { url, report };
}

async function browse(url: string, report: Promise<string>): Promise<string> {
  const profile = mkdtempSync(join(tmp, 'profile-'));
  const child: ChildProcess = spawn(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, url], { stdio: 'ignore' });
  try {
    return await Promise.race([report, new Promise<string>((_, reject) => setTimeout(() => reject(new Error('no report from the page within 20 s')), 20_000))]);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill();
    await exited;
  }
}

afterAll(() => {
  for (const s of servers) s.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!haveChromium)('createCodecServer in a real browser (headless Chromium)', () => {
  it('the allowed Web UI origin decodes with credentials; another origin is blocked by CORS before any POST', async () => {
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(SECRET)]);
    const payloads = [payloadToJSON(sealed!)];
    const ui = await pageServer(payloads);
    const evil = await pageServer(payloads);
    const handler = createCodecServer({
      codec,
      allowedOrigins: [ui.url],
      authorize: ({ headers }) => {
        posts.push({ origin: headers.origin, authorization: headers.authorization });
        return headers.authorization === 'Bearer good';
      },
    });
    codecBase = await listen(createServer(handler));

    const fromUi = await browse(ui.url, ui.report);
    expect(fromUi).toMatch(/^status 200 /);
    const decoded = JSON.parse(fromUi.slice('status 200 '.length)) as { payloads: Array<{ data: string }> };
    expect(JSON.parse(Buffer.from(decoded.payloads[0]!.data, 'base64').toString())).toBe(SECRET);
    expect(posts).toEqual([{ origin: ui.url, authorization: 'Bearer good' }]);

    const fromEvil = await browse(evil.url, evil.report);
    expect(fromEvil).toBe('blocked TypeError');
    expect(posts).toHaveLength(1); // the preflight was refused: the browser never sent the POST
  });
});
