// The browser example, as a person uses it: the page is served from loopback, headless Chromium
// (Debian's `chromium`, driven by playwright-core) verifies the simulated enclave and seals a
// message, and the enclave side opens it here in Node.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NitroEnclaveError } from '../../src/errors.js';
import { simulatedReceiver } from '../helpers/seal.js';
// @ts-expect-error: plain ESM example without type declarations
import { buildBrowserClient } from '../../examples/browser-client/build.mjs';

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(executablePath);
if (!haveChromium) {
  if (process.env.CI === 'true') throw new Error(`${executablePath} not found: .ci/run installs Debian's chromium; in CI this test must not skip`);
  console.warn(`\n[nitro-enclave-sdk tests] SKIPPED: the browser example test needs Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)\n`);
}

const pageDir = join(import.meta.dirname, '..', '..', 'examples', 'browser-client');
const tmp = mkdtempSync(join(tmpdir(), 'nes-browser-'));
let ctx: Awaited<ReturnType<typeof simulatedReceiver>>;
let server: Server;
let origin: string;
let browser: BrowserContext;
const opened: Array<{ agent: string; plaintext: string }> = [];
const requests: string[] = [];

function reply(res: import('node:http').ServerResponse, status: number, body: unknown, type = 'application/json') {
  res.writeHead(status, { 'content-type': type });
  res.end(typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body));
}

beforeAll(async () => {
  if (!haveChromium) return;
  ctx = await simulatedReceiver();
  const bundle = readFileSync(await buildBrowserClient(join(tmp, 'out')));
  // The test plays the parent's HTTP front: it serves the page and relays attest/open to the enclave.
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (req.method === 'GET' && (req.url === '/' || req.url === '/index.html')) return reply(res, 200, readFileSync(join(pageDir, 'index.html')), 'text/html');
    if (req.method === 'GET' && req.url === '/client.js') return reply(res, 200, bundle, 'text/javascript');
    if (req.method !== 'POST') return reply(res, 404, { ok: false });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (req.url === '/attest') {
          const document = await ctx.receiver.attest(new Uint8Array(Buffer.from(body.nonce, 'base64')));
          return reply(res, 200, { ok: true, document: Buffer.from(document).toString('base64') });
        }
        if (req.url === '/open') {
          const plaintext = await ctx.receiver.open(new Uint8Array(Buffer.from(body.sealed, 'base64')), { info: new TextEncoder().encode(`agent:${body.agent}`) });
          opened.push({ agent: body.agent, plaintext: new TextDecoder().decode(plaintext) });
          plaintext.fill(0);
          return reply(res, 200, { ok: true });
        }
        reply(res, 404, { ok: false });
      } catch (err) {
        reply(res, 400, { ok: false, error: err instanceof NitroEnclaveError ? err.code : 'BAD_REQUEST' });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launchPersistentContext(join(tmp, 'profile'), {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  rmSync(tmp, { recursive: true, force: true });
});

async function openPage(): Promise<Page> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${origin}/`);
  await page.fill('#pcr0', ctx.enclave.imageSha384);
  await page.fill('#anchor', createHash('sha256').update(ctx.enclave.trustAnchor).digest('hex'));
  expect(errors).toEqual([]);
  return page;
}

async function statusOf(page: Page): Promise<{ state: string; text: string }> {
  await page.waitForFunction(`['sealed', 'error', 'sent'].includes(document.getElementById('status').dataset.state)`, undefined, { timeout: 20_000 });
  return { state: (await page.getAttribute('#status', 'data-state'))!, text: (await page.textContent('#status'))! };
}

describe.skipIf(!haveChromium)('examples/browser-client in headless Chromium', () => {
  it('fetches a document from the gateway, verifies the enclave, seals; the enclave opens it in Node', async () => {
    const page = await openPage();
    await page.fill('#message', 'card 4111 1111 1111 1111, for the planner only');
    requests.length = 0;
    await page.click('#seal');
    expect(await statusOf(page)).toMatchObject({ state: 'sealed' });
    expect(requests).toEqual(['POST /attest']);
    const sealed = new Uint8Array(Buffer.from(await page.inputValue('#sealed'), 'base64'));
    const plaintext = await ctx.receiver.open(sealed, { info: new TextEncoder().encode('agent:planner') });
    expect(new TextDecoder().decode(plaintext)).toBe('card 4111 1111 1111 1111, for the planner only');
    await expect(ctx.receiver.open(sealed, { info: new TextEncoder().encode('agent:executor') })).rejects.toMatchObject({ code: 'ERR_SEAL_DECRYPT_FAILED' });
    // And through the page's own "send" button, as the gateway's open.
    await page.click('#send');
    expect(await statusOf(page)).toMatchObject({ state: 'sent' });
    expect(opened.at(-1)).toEqual({ agent: 'planner', plaintext: 'card 4111 1111 1111 1111, for the planner only' });
    await page.close();
  });

  it('a pasted document is verified and sealed to (freshness by age)', async () => {
    const page = await openPage();
    await page.fill('#document', Buffer.from(await ctx.receiver.attest()).toString('base64'));
    await page.fill('#message', 'pasted path');
    requests.length = 0;
    await page.click('#seal');
    expect(await statusOf(page)).toMatchObject({ state: 'sealed' });
    expect(requests).toEqual([]);
    const sealed = new Uint8Array(Buffer.from(await page.inputValue('#sealed'), 'base64'));
    expect(new TextDecoder().decode(await ctx.receiver.open(sealed, { info: new TextEncoder().encode('agent:planner') }))).toBe('pasted path');
    await page.close();
  });

  it('refuses an enclave with another PCR0, or under the default AWS root, and seals nothing', async () => {
    const page = await openPage();
    await page.fill('#message', 'never sealed');
    await page.fill('#pcr0', 'ab'.repeat(48));
    await page.click('#seal');
    const wrongImage = await statusOf(page);
    expect(wrongImage.state).toBe('error');
    expect(wrongImage.text).toMatch(/^ERR_ATTESTATION_PCR_MISMATCH: PCR0 mismatch/);
    expect(await page.inputValue('#sealed')).toBe('');

    await page.fill('#pcr0', ctx.enclave.imageSha384);
    await page.fill('#anchor', '');
    await page.click('#seal');
    const untrusted = await statusOf(page);
    expect(untrusted.text).toMatch(/^ERR_ATTESTATION_UNTRUSTED_ROOT/);
    expect(await page.inputValue('#sealed')).toBe('');
    expect(await page.isDisabled('#send')).toBe(true);
    await page.close();
  });
});
