import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { JSONToPayload, payloadToJSON, type JSONPayload } from '@temporalio/common/lib/proto-utils.js';
import { NitroEnclaveError } from '../errors.js';
import { PieceBuffer } from '../internal/pieces.js';

/** What `authorize` sees of a request; the body is not read before it answers. */
export interface CodecServerRequest {
  readonly operation: 'encode' | 'decode';
  /** The `X-Namespace` header (the Web UI and the CLI send it), if any. */
  readonly namespace: string | undefined;
  /** The `Origin` header, already checked against `allowedOrigins`; undefined for the CLI. */
  readonly origin: string | undefined;
  /** All request headers: `authorization` (the Web UI's access token when `passAccessToken` is on), `authorization-extras`, cookies. */
  readonly headers: IncomingHttpHeaders;
}

/** `true` serves the request; `false` answers 403; `'unauthenticated'` answers 401. */
export type CodecServerAuthorization = boolean | 'unauthenticated';

/** Options of {@link createCodecServer}: the codec, the required `authorize` check, the allowed Web UI origins and the body limit. */
export interface CodecServerOptions {
  /** The codec that encodes and decodes (e.g. {@link createTskPayloadCodec}). */
  codec: PayloadCodec;
  /**
   * Decides, before the body is read, whether a request may use the codec. Required: a server
   * that decrypts is an oracle for anyone who reaches it.
   */
  authorize: (request: CodecServerRequest) => CodecServerAuthorization | Promise<CodecServerAuthorization>;
  /** Exact origins allowed to call from a browser, e.g. `['https://temporal-ui.example.com']`. Default: none (CLI only). */
  allowedOrigins?: readonly string[];
  /** Largest request body accepted; larger ones get 413. Default 8 MiB. */
  maxBodyBytes?: number;
}

const ALLOW_HEADERS = 'Authorization, Authorization-Extras, X-Namespace, Content-Type';
/** Headers `authorize` relies on: each may appear at most once (400 otherwise). */
const SINGLE_HEADERS = ['x-namespace', 'authorization', 'authorization-extras', 'origin'] as const;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(json)), 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', ...headers });
  res.end(json);
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Copied into fixed pieces: a body dripped one byte per packet costs its bytes, not a Buffer each.
    const body = new PieceBuffer();
    const onData = (chunk: Buffer) => {
      if (body.length + chunk.length > limit) {
        req.off('data', onData);
        req.resume(); // discard the rest; the connection closes after the 413
        reject(new HttpError(413, `request body exceeds ${limit} bytes`));
        return;
      }
      body.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(body.take()));
    req.once('error', reject);
  });
}

function parsePayloads(body: Buffer): Payload[] {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
  const list = (json as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(list)) throw new HttpError(400, 'body must be {"payloads": [...]}');
  return list.map((p, i) => {
    try {
      if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new TypeError('not an object');
      return JSONToPayload(p as JSONPayload);
    } catch {
      throw new HttpError(400, `payloads[${i}] is not a proto-JSON Payload`);
    }
  });
}

/**
 * A `node:http` request handler for Temporal's Codec Server protocol, used by the Web UI (from the
 * user's browser) and the CLI (`--codec-endpoint`): `POST …/encode` and `POST …/decode` (matched on
 * the last path segment) with the proto-JSON body `{"payloads": [...]}` and the `X-Namespace`
 * header; CORS preflights for `allowedOrigins` with credentials. Answers 400 on bad JSON, a codec
 * error, or a repeated `X-Namespace` / `Authorization` / `Authorization-Extras` / `Origin` header (the body carries the error's code and message, never plaintext), 413 over `maxBodyBytes`,
 * 401/403 from `authorize`, 403 for an origin not allowed.
 *
 * Exposure: whoever passes `authorize` reads every payload the codec's keys can open. In an enclave
 * it listens behind a vsock listener that the parent relays, so terminate TLS inside the enclave
 * (serve this handler with `node:https`, with a certificate whose key never leaves the enclave):
 * over plain HTTP the parent reads the decoded payloads and the callers' tokens.
 *
 * @example
 * ```ts
 * const handler = createCodecServer({
 *   codec: createTskPayloadCodec({ keys: ring }),
 *   authorize: ({ headers }) => (headers.authorization ? verifyToken(headers.authorization) : 'unauthenticated'),
 *   allowedOrigins: ['https://temporal-ui.example.com'],
 * });
 * https.createServer({ key, cert }, handler).listen(8888);
 * ```
 */
export function createCodecServer(options: CodecServerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  if (typeof options !== 'object' || options === null) throw new TypeError('options are required');
  const { codec, authorize, allowedOrigins = [], maxBodyBytes = 8 * 1024 * 1024 } = options;
  if (typeof codec?.encode !== 'function' || typeof codec.decode !== 'function') throw new TypeError('codec must be a PayloadCodec');
  if (typeof authorize !== 'function') throw new TypeError('authorize is required: a codec server that decrypts is an oracle for anyone who reaches it');
  if (!Array.isArray(allowedOrigins)) throw new TypeError('allowedOrigins must be an array of origins');
  for (const o of allowedOrigins) {
    let origin: string | undefined;
    try {
      origin = new URL(o).origin;
    } catch {
      origin = undefined;
    }
    if (typeof o !== 'string' || origin !== o) throw new TypeError(`allowedOrigins: ${JSON.stringify(o)} is not an origin (scheme://host[:port], no path or trailing slash)`);
  }
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) throw new TypeError('maxBodyBytes must be a positive integer');
  const origins = new Set(allowedOrigins);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Node joins a repeated X-Namespace into "prod, dev" and keeps only the first Authorization:
    // either way `authorize` would judge something other than what was sent.
    for (const name of SINGLE_HEADERS) {
      if ((req.headersDistinct[name]?.length ?? 0) > 1) throw new HttpError(400, `the ${name} header appears more than once`);
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !origins.has(origin)) throw new HttpError(403, 'origin not allowed');
    if (origin !== undefined) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    res.setHeader('Vary', 'Origin');
    const segment = new URL(req.url ?? '/', 'http://codec.invalid').pathname.split('/').filter(Boolean).pop();
    if (segment !== 'encode' && segment !== 'decode') throw new HttpError(404, 'not found: POST …/encode or …/decode');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Allow-Methods': 'POST, OPTIONS', 'Access-Control-Allow-Headers': ALLOW_HEADERS, 'Access-Control-Max-Age': '600', 'Content-Length': '0' });
      res.end();
      return;
    }
    if (req.method !== 'POST') throw new HttpError(405, 'method not allowed');
    const namespace = req.headers['x-namespace'];
    let verdict: CodecServerAuthorization;
    try {
      verdict = await authorize({ operation: segment, namespace: Array.isArray(namespace) ? namespace[0] : namespace, origin, headers: req.headers });
    } catch {
      throw new HttpError(500, 'authorization check failed');
    }
    if (verdict === 'unauthenticated') throw new HttpError(401, 'authentication required');
    if (verdict !== true) throw new HttpError(403, 'forbidden');
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\s*(;|$)/i.test(type)) throw new HttpError(415, 'Content-Type must be application/json');
    const declared = Number(req.headers['content-length']);
    if (declared > maxBodyBytes) throw new HttpError(413, `request body exceeds ${maxBodyBytes} bytes`);
    const payloads = parsePayloads(await readBody(req, maxBodyBytes));
    let result: Payload[];
    try {
      result = segment === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
    } catch (err) {
      if (err instanceof NitroEnclaveError) throw new HttpError(400, err.message, err.code);
      throw new HttpError(400, `${segment} failed`);
    }
    send(res, 200, { payloads: result.map(payloadToJSON) });
  }

  return (req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof HttpError ? err : new HttpError(500, 'internal error');
      if (res.headersSent) return void res.destroy();
      const extra: Record<string, string> = {};
      if (e.status === 413) extra.Connection = 'close';
      if (e.status === 401) extra['WWW-Authenticate'] = 'Bearer';
      if (e.status === 405) extra.Allow = 'POST, OPTIONS';
      if (e.status === 403 && e.message === 'origin not allowed') {
        res.removeHeader('Access-Control-Allow-Origin');
        res.removeHeader('Access-Control-Allow-Credentials');
      }
      send(res, e.status, { error: e.code ?? httpCode(e.status), message: e.message }, extra);
    });
  };
}

function httpCode(status: number): string {
  return ({ 400: 'BAD_REQUEST', 401: 'UNAUTHENTICATED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 405: 'METHOD_NOT_ALLOWED', 413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE' } as Record<number, string>)[status] ?? 'INTERNAL';
}
