// The gateway on the parent: an HTTP front that serves the page, relays `attest` to the enclave,
// starts the browser pipeline on Temporal with the browser's sealed request as its input, and hands
// back the workflow's result, sealed to the browser's key. It reads none of it.
import { createServer } from 'node:http';
import { REQUEST_ID, WORKFLOW_ID_PREFIX } from '../wire.mjs';

const MAX_BODY_BYTES = 256 * 1024;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function reply(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body));
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let length = 0;
    req.on('data', (c) => {
      length += c.length;
      if (length > MAX_BODY_BYTES) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(Object.assign(new Error('not JSON'), { status: 400 }));
      }
    });
    req.on('error', reject);
  });
}

/** The code of a failed workflow, as far as the parent can tell (the details are sealed). */
function failureCode(err) {
  for (let e = err; e; e = e.cause) if (typeof e.type === 'string' && e.type) return e.type;
  return err?.name === 'WorkflowFailedError' ? 'WORKFLOW_FAILED' : 'GATEWAY_ERROR';
}

/**
 * Starts the gateway. `link`: the enclave's gateway port (parent/enclave-link.mjs); `client`: a
 * Temporal `Client`; `page`: `{ html, js }` bytes. `resultWaitMs` bounds one `/result` long poll.
 */
export async function startGateway({ host = '127.0.0.1', port = 0, link, client, taskQueue, page, resultWaitMs = 20_000 }) {
  const server = createServer(async (req, res) => {
    try {
      const path = new URL(req.url, 'http://gateway').pathname;
      if (req.method === 'GET' && (path === '/' || path === '/index.html')) return reply(res, 200, page.html, 'text/html; charset=utf-8');
      if (req.method === 'GET' && path === '/client.js') return reply(res, 200, page.js, 'text/javascript; charset=utf-8');
      if (req.method !== 'POST') return reply(res, 404, { ok: false, error: 'NOT_FOUND' });
      const body = await readJson(req);
      if (path === '/attest') {
        if (typeof body.nonce !== 'string' || !BASE64.test(body.nonce) || body.nonce.length > 700) return reply(res, 400, { ok: false, error: 'BAD_REQUEST' });
        const answer = await link.request({ op: 'attest', nonce: body.nonce });
        return reply(res, answer.ok ? 200 : 502, answer.ok ? { ok: true, document: answer.document } : { ok: false, error: answer.error });
      }
      if (typeof body.requestId !== 'string' || !REQUEST_ID.test(body.requestId)) return reply(res, 400, { ok: false, error: 'BAD_REQUEST' });
      const workflowId = WORKFLOW_ID_PREFIX + body.requestId;
      if (path === '/ask') {
        if (typeof body.sealed !== 'string' || !BASE64.test(body.sealed)) return reply(res, 400, { ok: false, error: 'BAD_REQUEST' });
        await client.workflow.start('browserPipeline', { workflowId, taskQueue, args: [new Uint8Array(Buffer.from(body.sealed, 'base64'))] });
        return reply(res, 200, { ok: true, workflowId });
      }
      if (path === '/result') {
        let timer;
        const waited = new Promise((resolve) => (timer = setTimeout(() => resolve(null), resultWaitMs)));
        try {
          const sealed = await Promise.race([client.workflow.getHandle(workflowId).result(), waited]);
          if (sealed === null) return reply(res, 202, { ok: false, error: 'PENDING' });
          return reply(res, 200, { ok: true, sealed: Buffer.from(sealed).toString('base64') });
        } catch (err) {
          return reply(res, 502, { ok: false, error: failureCode(err) });
        } finally {
          clearTimeout(timer);
        }
      }
      return reply(res, 404, { ok: false, error: 'NOT_FOUND' });
    } catch (err) {
      if (!res.headersSent) reply(res, err.status ?? 502, { ok: false, error: err.status ? 'BAD_REQUEST' : (err.code ?? 'GATEWAY_ERROR') });
    }
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, host, resolve));
  const origin = `http://${host}:${server.address().port}`;
  return {
    origin,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
