// `npm run demo:browser`, driven as a person uses it: headless Chromium (Debian's `chromium`, via
// playwright-core) opens the page the gateway serves, verifies the simulated enclave, seals a
// question, and opens the sealed report. The test plays the parent too: it records every byte the
// gateway relayed (HTTP in front of it, the enclave port behind it) and searches them, and the
// Temporal stand-in's stored histories and received requests, for the question and the report.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, createConnection, type Server, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealToEnclave } from '../../src/seal/index.js';
import { cachedWorkflowBundle } from '../workflow-e2e/helpers/bundle.js';
// @ts-expect-error: plain ESM example without type declarations
import { startBrowserDemo } from '../../examples/browser-gateway/demo.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { createEnclaveLink } from '../../examples/browser-gateway/parent/enclave-link.mjs';
// @ts-expect-error: plain ESM example without type declarations
import { encodeRequest, REQUEST_INFO } from '../../examples/browser-gateway/wire.mjs';

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(executablePath);
if (!haveChromium) {
  if (process.env.CI === 'true') throw new Error(`${executablePath} not found: .ci/run installs Debian's chromium; in CI this test must not skip`);
  console.warn(`\n[nitro-enclave-sdk tests] SKIPPED: the browser gateway test needs Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)\n`);
}

const exampleDir = join(import.meta.dirname, '..', '..', 'examples', 'browser-gateway');
/** Screenshots stay out of the repository: $ARTIFACTS_DIR, or a directory under the system tmpdir. */
const artifacts = process.env.ARTIFACTS_DIR ?? join(tmpdir(), 'nitro-enclave-sdk-artifacts');
const tmp = mkdtempSync(join(tmpdir(), 'nes-browser-gateway-'));
Runtime.install({ logger: new DefaultLogger('ERROR') });

// Nothing the demo page itself contains: these strings exist only in the browser and the enclave.
const question = 'Should Initech buy Vandelay Industries (codename NIGHTJAR-7731)?';
const sources = ['Vandelay ledger Q3 (ref 58213)', 'Initech audit note KESTREL-44'];

type Demo = {
  url: string;
  origin: string;
  pcr0: string;
  trustAnchor: Uint8Array;
  standIn: import('../../src/testing/temporal/index.js').TemporalStandIn;
  enclaveGatewayAddress: { family: 'unix'; path: string };
  close(): Promise<void>;
};
let demo: Demo;
let browser: BrowserContext;
let proxy: Server;
let proxyOrigin: string;
const httpBytes: Buffer[] = [];
const enclaveBytes: Buffer[] = [];

/** A TCP relay in front of the gateway that keeps every byte, both ways: what the parent's HTTP front saw. */
async function recordingProxy(target: URL): Promise<Server> {
  const server = createServer((client) => {
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
    client.on('data', (c: Buffer) => (httpBytes.push(Buffer.from(c)), upstream.write(c)));
    upstream.on('data', (c: Buffer) => (httpBytes.push(Buffer.from(c)), client.write(c)));
    const end = () => (client.destroy(), upstream.destroy());
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

beforeAll(async () => {
  if (!haveChromium) return;
  const workflowBundle = await cachedWorkflowBundle(join(exampleDir, 'workflows', 'browser-pipeline.ts'), [join(exampleDir, 'workflows')]);
  demo = await startBrowserDemo({ log: () => {}, workflowBundle, onEnclaveBytes: (_direction: string, bytes: Uint8Array) => enclaveBytes.push(Buffer.from(bytes)) });
  proxy = await recordingProxy(new URL(demo.origin));
  proxyOrigin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  browser = await chromium.launchPersistentContext(join(tmp, 'profile'), {
    executablePath,
    headless: true,
    viewport: { width: 900, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (proxy ? proxy.close(resolve) : resolve(undefined)));
  await demo?.close();
  rmSync(tmp, { recursive: true, force: true });
}, 30_000);

async function openPage(fragment: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${proxyOrigin}/#${fragment}`);
  return { page, errors };
}

const settled = (id: string, states: string[]) => `${JSON.stringify(states)}.includes(document.getElementById(${JSON.stringify(id)}).dataset.state)`;

describe.skipIf(!haveChromium)('examples/browser-gateway: the demo page in headless Chromium', () => {
  it('verifies the image, seals the question, and opens the report in the page; the parent and Temporal hold no byte of either in clear', async () => {
    const { page, errors } = await openPage(new URL(demo.url).hash.slice(1));
    await page.waitForFunction(settled('enclave', ['verified', 'error']), undefined, { timeout: 15_000 });
    expect(await page.textContent('#enclave')).toContain(`Verified enclave: image PCR0 ${demo.pcr0}`);

    await page.fill('#question', question);
    await page.fill('#sources', sources.join('\n'));
    await page.click('#ask');
    await page.waitForFunction(settled('status', ['done', 'error']), undefined, { timeout: 40_000 });
    expect(await page.textContent('#status')).toBe('report opened in this page');
    expect(await page.textContent('#report h2')).toBe(`Report: ${question}`);
    expect(await page.textContent('#verdict')).toBe('Verdict: supported by independent sources (confidence 0.8)');
    expect(await page.$$eval('#report li', (li) => li.map((e) => e.textContent))).toEqual(sources.map((s, i) => `[${i + 1}] ${s}`));
    expect(errors).toEqual([]);
    mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: join(artifacts, 'browser-gateway.png'), fullPage: true });
    await page.close();

    // What Temporal stored: the browser's sealed request in, the sealed response out.
    const stored = demo.standIn.storedHistories();
    expect(stored).toHaveLength(1);
    const history = demo.standIn.history(stored[0]!.workflowId);
    const payloadOf = (e: (typeof history.events)[number]) => (e.workflowExecutionStartedEventAttributes?.input ?? e.workflowExecutionCompletedEventAttributes?.result)?.payloads?.[0]?.data;
    const sealedRequest = Buffer.from(payloadOf(history.events[0]!)!);
    const sealedResponse = Buffer.from(payloadOf(history.events.at(-1)!)!);
    const http = Buffer.concat(httpBytes);
    const enclave = Buffer.concat(enclaveBytes);
    // The recordings hold what was relayed (so searching them means something)...
    expect(http.includes(Buffer.from(sealedRequest.toString('base64')))).toBe(true);
    expect(http.includes(Buffer.from(sealedResponse.toString('base64')))).toBe(true);
    expect(enclave.includes(Buffer.from(sealedRequest.toString('base64')))).toBe(true);
    expect(enclave.includes(Buffer.from(sealedResponse.toString('base64')))).toBe(true);
    // ...and none of the question, the sources or the report.
    for (const needle of [question, 'NIGHTJAR-7731', ...sources, 'supported by independent sources']) {
      expect(http.includes(Buffer.from(needle)), `gateway HTTP: ${needle}`).toBe(false);
      expect(enclave.includes(Buffer.from(needle)), `enclave port: ${needle}`).toBe(false);
      for (const h of stored) expect(Buffer.from(h.history).includes(Buffer.from(needle)), `history: ${needle}`).toBe(false);
      expect(demo.standIn.sawBytes(needle), `Temporal requests: ${needle}`).toBe(false);
    }
  }, 60_000);

  it('the parent cannot replay the request, nor run a fresh one under a workflow id of its choosing', async () => {
    const link = createEnclaveLink(demo.enclaveGatewayAddress);
    const { workflowId, history: bytes } = demo.standIn.storedHistories()[0]!;
    const history = demo.standIn.history(workflowId);
    const sealedRequest = history.events[0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!.data!;
    const b64 = Buffer.from(sealedRequest).toString('base64');
    expect(bytes.length).toBeGreaterThan(0);
    expect(await link.request({ op: 'intake', workflowId, sealed: b64 })).toEqual({ ok: false, error: 'ERR_SEAL_REPLAYED' });
    expect(await link.request({ op: 'intake', workflowId: 'browser-parent-choice', sealed: b64 })).toEqual({ ok: false, error: 'ERR_SEAL_REPLAYED' });

    // A request the parent never saw opened: sealed here like the page does, started under another id.
    const nonce = crypto.getRandomValues(new Uint8Array(32));
    const { document } = await link.request({ op: 'attest', nonce: Buffer.from(nonce).toString('base64') });
    const keyPair = (await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits'])) as import('node:crypto').webcrypto.CryptoKeyPair;
    const responseKey = new Uint8Array(await crypto.subtle.exportKey('raw', keyPair.publicKey));
    const requestId = 'ab'.repeat(16);
    const sealed = await sealToEnclave(new Uint8Array(Buffer.from(document, 'base64')), encodeRequest({ requestId, responseKey, question, sources }), {
      expected: { pcrs: { 0: demo.pcr0 }, nonce },
      trustAnchors: [demo.trustAnchor],
      info: new TextEncoder().encode(REQUEST_INFO),
    });
    expect(await link.request({ op: 'intake', workflowId: `browser-${'cd'.repeat(16)}`, sealed: Buffer.from(sealed).toString('base64') })).toEqual({ ok: false, error: 'E_GATEWAY_FORMAT' });
    // Sealed for another use (the seal's application info differs): does not open as a gateway request.
    const other = await sealToEnclave(new Uint8Array(Buffer.from(document, 'base64')), encodeRequest({ requestId, responseKey, question, sources }), {
      expected: { pcrs: { 0: demo.pcr0 }, nonce },
      trustAnchors: [demo.trustAnchor],
      info: new TextEncoder().encode('agent:planner'),
    });
    expect(await link.request({ op: 'intake', workflowId: `browser-${requestId}`, sealed: Buffer.from(other).toString('base64') })).toEqual({ ok: false, error: 'ERR_SEAL_DECRYPT_FAILED' });
  }, 30_000);

  it('the parent cannot hand the report of one request to another, and a workflow that fails tells the page its code only', async () => {
    const link = createEnclaveLink(demo.enclaveGatewayAddress);
    const { workflowId } = demo.standIn.storedHistories()[0]!;
    const reportState = demo.standIn
      .history(workflowId)
      .events.map((e) => e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data)
      .filter((d): d is Uint8Array => d instanceof Uint8Array)
      .at(-2)!; // the last is deliver's response; before it, the report agent's state
    const state = Buffer.from(reportState).toString('base64');
    expect(await link.request({ op: 'deliver', workflowId: `browser-${'ef'.repeat(16)}`, state })).toEqual({ ok: false, error: 'ERR_SEALED_WRONG_WORKFLOW' });
    // Delivered again under its own workflow: sealed anew to the same page's key, which only that page opens.
    expect(await link.request({ op: 'deliver', workflowId, state })).toMatchObject({ ok: true });

    const requestId = '12'.repeat(16);
    const ask = await fetch(`${demo.origin}/ask`, { method: 'POST', body: JSON.stringify({ requestId, sealed: Buffer.from('not a sealed request').toString('base64') }) });
    expect(await ask.json()).toEqual({ ok: true, workflowId: `browser-${requestId}` });
    const result = await fetch(`${demo.origin}/result`, { method: 'POST', body: JSON.stringify({ requestId }) });
    expect([result.status, await result.json()]).toEqual([502, { ok: false, error: 'ERR_SEAL_UNSUPPORTED_VERSION' }]);
    const bad = await fetch(`${demo.origin}/ask`, { method: 'POST', body: JSON.stringify({ requestId: '../x', sealed: '' }) });
    expect([bad.status, await bad.json()]).toEqual([400, { ok: false, error: 'BAD_REQUEST' }]);
  }, 30_000);

  it('a page expecting another image refuses the enclave and sends no question', async () => {
    const hash = new URLSearchParams(new URL(demo.url).hash.slice(1));
    hash.set('pcr0', 'ab'.repeat(48));
    const { page } = await openPage(hash.toString());
    await page.waitForFunction(settled('enclave', ['verified', 'error']), undefined, { timeout: 15_000 });
    expect(await page.textContent('#enclave')).toMatch(/^Not verified: ERR_ATTESTATION_PCR_MISMATCH: PCR0 mismatch/);
    const before = Buffer.concat(httpBytes).toString('latin1').split('POST /ask').length;
    await page.click('#ask');
    await page.waitForFunction(settled('status', ['done', 'error']), undefined, { timeout: 15_000 });
    expect(await page.textContent('#status')).toMatch(/^ERR_ATTESTATION_PCR_MISMATCH/);
    expect(Buffer.concat(httpBytes).toString('latin1').split('POST /ask').length).toBe(before);
    await page.close();
  }, 30_000);
});
