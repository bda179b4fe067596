import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TrustAnchor } from '../../attestation/trust.js';
import type { PolicyDocument } from '../../kms/policy.js';
import { FaultInjector } from './faults.js';
import { KmsError, OPERATIONS, type CallContext } from './operations.js';
import { verifySigV4, type TestPrincipal } from './sigv4.js';
import { KmsState } from './state.js';
import { createTestTls } from './tls.js';

/** A principal of the simulator, with optional IAM identity policies (used when the key policy delegates to IAM). */
export interface SimulatedPrincipal extends TestPrincipal {
  identityPolicies?: PolicyDocument[];
}

/** Options of {@link startKmsSimulator}. */
export interface KmsSimulatorOptions {
  region?: string;
  accountId?: string;
  /** Callers; default: an admin user and an enclave instance role with temporary credentials. */
  principals?: SimulatedPrincipal[];
  /** Roots accepted for `Recipient` attestation documents (the simulated enclave's `trustAnchor`). */
  trustAnchors?: TrustAnchor[];
  /** How old an attestation document may be. Default 5 minutes. */
  attestationMaxAge?: number;
  clock?: () => Date;
  /** Persist keys and policies across restarts (written atomically). */
  stateFile?: string;
  host?: string;
  port?: number;
  /** More names for the TLS certificate (e.g. another region's endpoint, for wrong-region tests). */
  tlsHostnames?: string[];
}

/** One CloudTrail-like record. */
export interface AuditEvent {
  eventTime: string;
  eventName: string;
  userIdentity: { arn: string; accessKeyId: string } | null;
  requestParameters: Record<string, unknown>;
  resources: Array<{ ARN: string }>;
  additionalEventData?: { recipient: Record<string, string> };
  errorCode?: string;
  errorMessage?: string;
}

/** A running KMS simulator ({@link startKmsSimulator}): its endpoint, TLS CA, principals, audit log and fault injector. */
export interface KmsSimulator {
  readonly region: string;
  readonly accountId: string;
  /** `https://127.0.0.1:<port>`: where the simulator listens. */
  readonly url: string;
  readonly port: number;
  /** The hostname the TLS certificate names: `kms.<region>.amazonaws.com`. */
  readonly hostname: string;
  /** The test CA (PEM) a client must trust to talk to the simulator. */
  readonly caPem: string;
  readonly principals: readonly SimulatedPrincipal[];
  readonly audit: AuditEvent[];
  readonly faults: FaultInjector;
  /** The principal with this ARN suffix (e.g. `role/EnclaveInstanceRole`), for its credentials. */
  principal(suffix: string): SimulatedPrincipal;
  close(): Promise<void>;
}

/** The simulator's default AWS account id. */
export const TEST_ACCOUNT = '111122223333';

/**
 * Default callers: the seed's admin user (IAM kms:*), the enclave instance role (temporary credentials, no IAM policy) and an unrelated user.
 *
 * @example
 * ```ts
 * const kms = await startKmsSimulator({ principals: [...defaultPrincipals(), myPrincipal] });
 * ```
 */
export function defaultPrincipals(accountId = TEST_ACCOUNT): SimulatedPrincipal[] {
  return [
    {
      accessKeyId: 'AKIATESTADMIN0000001',
      secretAccessKey: 'test-admin-secret-key-not-real',
      arn: `arn:aws:iam::${accountId}:user/admin`,
      // A typical key administrator: IAM grants kms:*, effective where the key policy delegates to IAM.
      identityPolicies: [{ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:*', Resource: '*' }] }],
    },
    {
      accessKeyId: 'ASIATESTENCLAVEROLE1',
      secretAccessKey: 'test-enclave-role-secret-not-real',
      sessionToken: 'test-session-token-not-real',
      arn: `arn:aws:sts::${accountId}:assumed-role/EnclaveInstanceRole/i-0123456789abcdef0`,
    },
    { accessKeyId: 'AKIATESTOTHERUSER001', secretAccessKey: 'test-other-secret-not-real', arn: `arn:aws:iam::${accountId}:user/other` },
  ];
}

const MAX_BODY = 1024 * 1024;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new KmsError('ValidationException', 'Request body too large', 413));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Starts a KMS simulator: HTTPS on loopback speaking the AWS JSON 1.1
 * protocol, so the real `@aws-sdk/client-kms` works against it unchanged.
 * It checks SigV4 signatures, evaluates key policies (with attestation
 * conditions), verifies `Recipient` attestation documents and answers with
 * KMS-shaped CMS envelopes, errors and an audit trail.
 *
 * @example
 * ```ts
 * const enclave = createSimulatedEnclave();
 * const kms = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
 * const client = new KMSClient(kmsClientConfig(kms, kms.principal('user/admin')));
 * ```
 */
export async function startKmsSimulator(options: KmsSimulatorOptions = {}): Promise<KmsSimulator> {
  const region = options.region ?? 'us-east-1';
  const accountId = options.accountId ?? TEST_ACCOUNT;
  if (!/^\d{12}$/.test(accountId)) throw new TypeError('accountId must be 12 digits');
  const clock = options.clock ?? (() => new Date());
  const principals = options.principals ?? defaultPrincipals(accountId);
  const byKey = new Map(principals.map((p) => [p.accessKeyId, p]));
  const hostname = `kms.${region}.amazonaws.com`;
  const tls = createTestTls([hostname, 'localhost', ...(options.tlsHostnames ?? [])], clock());
  const state = new KmsState(region, accountId, options.stateFile ?? null);
  const faults = new FaultInjector();
  const audit: AuditEvent[] = [];
  const cfg = { state, trustAnchors: options.trustAnchors ?? [], attestationMaxAge: options.attestationMaxAge ?? 5 * 60_000 };
  if (cfg.trustAnchors.length === 0) cfg.trustAnchors = [randomBytes(32).toString('hex')]; // no anchor: every attestation fails closed

  const sockets = new Set<Socket>();
  const server: Server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    void handle(req, res);
  });
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID(), 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const sendError = (res: ServerResponse, err: KmsError) => {
    res.setHeader('x-amzn-errortype', `${err.type}:`);
    send(res, err.status, { __type: err.type, message: err.message });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = String(req.headers['x-amz-target'] ?? '');
    const operation = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : '';
    const now = clock();
    const event: AuditEvent = { eventTime: now.toISOString(), eventName: operation || target, userIdentity: null, requestParameters: {}, resources: [] };
    try {
      const body = await readBody(req);
      if (faults.latencyMs) await new Promise((r) => setTimeout(r, faults.latencyMs));
      const fault = faults.take(operation);
      if (fault?.kind === 'throttle') throw new KmsError('ThrottlingException', 'Rate exceeded');
      if (fault?.kind === 'internal-error') throw new KmsError('KMSInternalException', 'An internal error occurred (injected).', fault.status);
      if (fault?.kind === 'reset') {
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'content-length': 100 });
        res.write('{"KeyId":');
        setImmediate(() => req.socket.destroy());
        return;
      }
      if (req.method !== 'POST' || req.url !== '/') throw new KmsError('UnknownOperationException', '', 404);
      const auth = verifySigV4({ method: req.method, url: req.url, headers: req.headers, body }, { region, service: 'kms', principals: byKey, now });
      if ('error' in auth) throw new KmsError(auth.error.type, auth.error.message, auth.error.type === 'MissingAuthenticationTokenException' ? 403 : 400);
      const principal = auth.principal as SimulatedPrincipal;
      event.userIdentity = { arn: principal.arn, accessKeyId: principal.accessKeyId };
      const handler = Object.hasOwn(OPERATIONS, operation) ? OPERATIONS[operation] : undefined;
      if (!handler) throw new KmsError('UnknownOperationException', '');
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        throw new KmsError('SerializationException', 'Start of structure or map found where not expected.');
      }
      if (typeof json !== 'object' || json === null) throw new KmsError('SerializationException', 'Expected a JSON object');
      event.requestParameters = redact(json);
      const ctx: CallContext = { principalArn: principal.arn, identityPolicies: principal.identityPolicies ?? [], now, audit: { resources: [], requestParameters: event.requestParameters } };
      try {
        const result = await handler(cfg, json, ctx);
        if (fault?.kind === 'truncate') {
          const text = JSON.stringify(result);
          res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'content-length': Buffer.byteLength(text) });
          res.write(text.slice(0, Math.floor(text.length / 2)));
          setImmediate(() => req.socket.destroy());
          return;
        }
        send(res, 200, result);
      } finally {
        event.resources = ctx.audit.resources.map((ARN) => ({ ARN }));
        if (ctx.audit.recipient) event.additionalEventData = { recipient: ctx.audit.recipient };
      }
    } catch (err) {
      const kmsError = err instanceof KmsError ? err : new KmsError('KMSInternalException', 'An internal error occurred.', 500);
      event.errorCode = kmsError.type;
      event.errorMessage = kmsError.message;
      if (!res.headersSent) sendError(res, kmsError);
    } finally {
      audit.push(event);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    region,
    accountId,
    url: `https://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    hostname,
    caPem: tls.caPem,
    principals,
    audit,
    faults,
    principal(suffix) {
      const p = principals.find((x) => x.arn.endsWith(suffix) || x.arn.includes(`/${suffix}/`) || x.arn.includes(`${suffix}/`));
      if (!p) throw new TypeError(`no simulated principal matches ${suffix}`);
      return p;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Request parameters as CloudTrail shows them: blobs and documents are never recorded. */
function redact(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if (k === 'CiphertextBlob' || k === 'Plaintext') continue;
    if (k === 'Recipient' && typeof v === 'object' && v !== null) {
      out.recipient = { keyEncryptionAlgorithm: (v as Record<string, unknown>).KeyEncryptionAlgorithm, attestationDocument: '(present)' };
      continue;
    }
    if (k === 'Policy') {
      out.policy = '(policy document)';
      continue;
    }
    out[k.charAt(0).toLowerCase() + k.slice(1)] = v;
  }
  return out;
}
