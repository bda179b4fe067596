import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TrustAnchor } from '../../attestation/trust.js';
import type { PolicyDocument } from '../../internal/iam-policy.js';
import type { TLSSocket } from 'node:tls';
import { FaultInjector } from './faults.js';
import { accountOfPrincipal, authorizeIam, roleOfSession } from './access.js';
import { kmsEventRecord, kmsServiceEventRecord, lookupEvents, type CloudTrailRecord, type CloudTrailServiceEvent } from './cloudtrail.js';
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
  /** The home region. Default `us-east-1`. */
  region?: string;
  /**
   * More regions served by the same endpoint (for multi-Region keys and
   * ReplicateKey): a request belongs to the region of its SigV4 credential
   * scope, and when its Host names `kms.<region>.amazonaws.com` the two must
   * agree. Each region has its own keys and aliases.
   */
  regions?: string[];
  /**
   * How long a new grant takes to work without its grant token (KMS's
   * eventual consistency, "usually less than five minutes"). Default 5
   * minutes by the simulator's clock: a test that uses a fresh grant must pass
   * its grant token, as it must against KMS.
   */
  grantPropagationMs?: number;
  /**
   * LookupEvents requests allowed per second, per account and Region, by the
   * simulator's clock; more get `ThrottlingException`. Default 2, CloudTrail's
   * documented limit.
   */
  lookupEventsPerSecond?: number;
  /** The home account: `accountId` of the simulator, owner of a single-account state file. Default `accounts[0]`, else {@link TEST_ACCOUNT}. */
  accountId?: string;
  /**
   * The AWS accounts the simulator serves (12 digits each), besides
   * `accountId` and the accounts of `principals`. Without `principals`,
   * every account gets its {@link defaultPrincipals}.
   */
  accounts?: string[];
  /**
   * Callers, in any of the accounts: a principal belongs to the account of
   * its ARN, and creates keys there. Default: {@link defaultPrincipals} of
   * every account. Temporary credentials (`ASIA…` with a `sessionToken`)
   * expire at `expiration`, default `sessionDurationMs` after start.
   */
  principals?: SimulatedPrincipal[];
  /** IAM users and roles that exist without credentials (e.g. `arn:aws:iam::111122223333:role/Auditor`), so key policies may name them. */
  iamArns?: string[];
  /** Lifetime of temporary credentials that have no `expiration`. Default 6 hours (instance profile credentials). */
  sessionDurationMs?: number;
  /** Roots accepted for `Recipient` attestation documents (the simulated enclave's `trustAnchor`). */
  trustAnchors?: TrustAnchor[];
  /** How old an attestation document may be. Default 5 minutes. */
  attestationMaxAgeMs?: number;
  clock?: () => Date;
  /** Persist keys and policies across restarts (written atomically). */
  stateFile?: string;
  host?: string;
  port?: number;
  /** More names for the TLS certificate (e.g. another region's endpoint, for wrong-region tests). */
  tlsHostnames?: string[];
}

/** One record of the simulator's trail: a CloudTrail record of a KMS call ({@link CloudTrailRecord}). */
export type AuditEvent = CloudTrailRecord;

/**
 * CloudTrail's API (JSON 1.1, version 2013-11-01) by `X-Amz-Target`: botocore
 * sends the model's full target prefix, the AWS SDK for JavaScript v3 the
 * bare service shape name; CloudTrail answers both.
 */
const CLOUDTRAIL_TARGET = /^(?:com\.amazonaws\.cloudtrail\.v20131101\.)?CloudTrail_20131101\.(\w+)$/;

/** A running KMS simulator ({@link startKmsSimulator}): its endpoint, TLS CA, principals, audit log and fault injector. */
export interface KmsSimulator {
  /** The home region. */
  readonly region: string;
  /** Every region served, home first. */
  readonly regions: readonly string[];
  /** The home account (the first one). */
  readonly accountId: string;
  /** Every account the simulator serves, home first. */
  readonly accounts: readonly string[];
  /** `https://127.0.0.1:<port>`: where the simulator listens. */
  readonly url: string;
  readonly port: number;
  /** The hostname the TLS certificate names: `kms.<region>.amazonaws.com`. */
  readonly hostname: string;
  /** The test CA (PEM) a client must trust to talk to the simulator. */
  readonly caPem: string;
  readonly principals: readonly SimulatedPrincipal[];
  /**
   * Every request, as CloudTrail records KMS events, in arrival order. The
   * same endpoint serves CloudTrail's `LookupEvents` over it (sign for
   * service `cloudtrail`; the caller needs IAM `cloudtrail:LookupEvents`), so
   * `aws cloudtrail lookup-events --endpoint-url …` and
   * `@aws-sdk/client-cloudtrail` read it as they read a real trail.
   */
  readonly audit: AuditEvent[];
  /**
   * What KMS did by itself, as CloudTrail records it (`AwsServiceEvent`):
   * DeleteKey when a key's deletion date has passed, DeleteExpiredKeyMaterial
   * when imported material expires. Recorded when the simulator next handles
   * a request (KMS or LookupEvents) after they fall due; LookupEvents returns
   * them with the requests, in time order.
   */
  readonly serviceEvents: CloudTrailServiceEvent[];
  readonly faults: FaultInjector;
  /** The principal with this ARN suffix (e.g. `role/EnclaveInstanceRole`), in `accountId` (default: the home account), for its credentials. */
  principal(suffix: string, accountId?: string): SimulatedPrincipal;
  close(): Promise<void>;
}

/** The simulator's default AWS account id. */
export const TEST_ACCOUNT = '111122223333';

/**
 * Default callers of one account: the seed's admin user (IAM kms:*), the
 * enclave instance role (temporary credentials, no IAM policy) and an
 * unrelated user (no IAM policy).
 *
 * @example
 * ```ts
 * const kms = await startKmsSimulator({ principals: [...defaultPrincipals(), ...defaultPrincipals('444455556666'), myPrincipal] });
 * ```
 */
export function defaultPrincipals(accountId = TEST_ACCOUNT): SimulatedPrincipal[] {
  if (!/^\d{12}$/.test(accountId)) throw new TypeError('accountId must be 12 digits');
  // The test account keeps its historical key ids; other accounts get ids (and secrets) derived from the account, so they never collide.
  const home = accountId === TEST_ACCOUNT;
  const id = (prefix: 'AKIA' | 'ASIA', fixed: string, tag: string) => (home ? fixed : `${prefix}${accountId}${tag}`);
  const secret = (fixed: string) => (home ? fixed : `${fixed}-${accountId}`);
  return [
    {
      accessKeyId: id('AKIA', 'AKIATESTADMIN0000001', 'ADMN'),
      secretAccessKey: secret('test-admin-secret-key-not-real'),
      arn: `arn:aws:iam::${accountId}:user/admin`,
      // A typical key administrator: IAM grants kms:*, effective where the key policy delegates to IAM.
      identityPolicies: [
        { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:*', Resource: '*' }] },
        // and reads the account's trail (CloudTrail event history), as an operator who audits the key does
        { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'cloudtrail:LookupEvents', Resource: '*' }] },
      ],
    },
    {
      accessKeyId: id('ASIA', 'ASIATESTENCLAVEROLE1', 'ROLE'),
      secretAccessKey: secret('test-enclave-role-secret-not-real'),
      sessionToken: secret('test-session-token-not-real'),
      arn: `arn:aws:sts::${accountId}:assumed-role/EnclaveInstanceRole/i-0123456789abcdef0`,
    },
    { accessKeyId: id('AKIA', 'AKIATESTOTHERUSER001', 'OTHR'), secretAccessKey: secret('test-other-secret-not-real'), arn: `arn:aws:iam::${accountId}:user/other` },
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
 * It serves several AWS accounts at once, as one regional KMS endpoint does:
 * principals, keys and aliases belong to accounts. A bare key id or alias
 * resolves in the caller's own account; a key or alias ARN names its account
 * (another region's ARN is not found). A key of another account is usable
 * only where that API allows cross-account use, when its key policy allows
 * the caller (or the caller's account) AND the caller's own IAM policy
 * allows the action.
 *
 * @example
 * ```ts
 * const enclave = createSimulatedEnclave();
 * const kms = await startKmsSimulator({ trustAnchors: [enclave.trustAnchor] });
 * const client = new KMSClient(kmsClientConfig(kms, kms.principal('user/admin')));
 * ```
 *
 * @example Two accounts: the parent's own (attacker) account next to the real one
 * ```ts
 * const kms = await startKmsSimulator({ accounts: ['111122223333', '444455556666'], trustAnchors: [enclave.trustAnchor] });
 * const attacker = new KMSClient(kmsClientConfig(kms, kms.principal('user/admin', '444455556666')));
 * const { KeyMetadata } = await attacker.send(new CreateKeyCommand({}));
 * // KeyMetadata.Arn is arn:aws:kms:us-east-1:444455556666:key/…; `alias/…` of 444455556666 is separate from 111122223333's
 * ```
 */
export async function startKmsSimulator(options: KmsSimulatorOptions = {}): Promise<KmsSimulator> {
  const region = options.region ?? 'us-east-1';
  const regions = [...new Set([region, ...(options.regions ?? [])])];
  for (const r of regions) if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(r)) throw new TypeError(`region ${r} is not an AWS region name`);
  const clock = options.clock ?? (() => new Date());
  const startedAt = clock();
  const accountId = options.accountId ?? options.accounts?.[0] ?? TEST_ACCOUNT;
  const accounts = [...new Set([accountId, ...(options.accounts ?? [])])];
  for (const a of accounts) if (!/^\d{12}$/.test(a)) throw new TypeError('accountId and accounts must be 12 digits');
  const sessionDurationMs = options.sessionDurationMs ?? 6 * 3600_000;
  const principals = (options.principals ?? accounts.flatMap((a) => defaultPrincipals(a))).map((p) => checkedPrincipal(p, startedAt, sessionDurationMs));
  for (const p of principals) if (!accounts.includes(accountOfPrincipal(p.arn)!)) accounts.push(accountOfPrincipal(p.arn)!);
  const byKey = new Map<string, SimulatedPrincipal>();
  for (const p of principals) {
    if (byKey.has(p.accessKeyId)) throw new TypeError(`two principals share the access key id ${p.accessKeyId}`);
    byKey.set(p.accessKeyId, p);
  }
  const existing = new Set<string>(options.iamArns ?? []);
  for (const a of accounts) existing.add(a).add(`arn:aws:iam::${a}:root`);
  for (const p of principals) existing.add(p.arn).add(roleOfSession(p.arn));
  const hostname = `kms.${region}.amazonaws.com`;
  const tls = createTestTls([...regions.map((r) => `kms.${r}.amazonaws.com`), 'localhost', ...(options.tlsHostnames ?? [])], clock());
  const state = new KmsState(region, accountId, options.stateFile ?? null);
  const faults = new FaultInjector();
  const audit: AuditEvent[] = [];
  const serviceEvents: CloudTrailServiceEvent[] = [];
  // What LookupEvents reads: requests and service events in the order they happened.
  const trail: Array<AuditEvent | CloudTrailServiceEvent> = [];
  state.onServiceEvent = (eventName, keyArn, at) => {
    const record = kmsServiceEventRecord({ eventName, time: at, keyArn, eventId: randomUUID(), ...(eventName === 'DeleteExpiredKeyMaterial' ? { serviceEventDetails: { keyOrigin: 'EXTERNAL' } } : {}) });
    serviceEvents.push(record);
    trail.push(record);
  };
  const lookupsPerSecond = options.lookupEventsPerSecond ?? 2;
  if (!(lookupsPerSecond > 0)) throw new TypeError('lookupEventsPerSecond must be a positive number');
  const recentLookups = new Map<string, number[]>();
  const cfg = {
    state,
    trustAnchors: options.trustAnchors ?? [],
    attestationMaxAgeMs: options.attestationMaxAgeMs ?? 5 * 60_000,
    principalExists: (arn: string) => existing.has(arn),
    regions,
    grantPropagationMs: options.grantPropagationMs ?? 5 * 60_000,
  };
  if (cfg.trustAnchors.length === 0) cfg.trustAnchors = [randomBytes(32).toString('hex')]; // no anchor: every attestation fails closed

  const sockets = new Set<Socket>();
  const server: Server = createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    void handle(req, res);
  });
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const send = (res: ServerResponse, status: number, body: unknown, requestId: string = randomUUID()) => {
    const text = JSON.stringify(body);
    // The Date header comes from the simulator's clock, as AWS's does from its own: SDKs correct their clock skew from it.
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': requestId, 'content-length': Buffer.byteLength(text), date: clock().toUTCString() });
    res.end(text);
  };
  const sendError = (res: ServerResponse, err: KmsError, requestId?: string) => {
    res.setHeader('x-amzn-errortype', `${err.type}:`);
    send(res, err.status, { __type: err.type, message: err.message }, requestId);
  };

  function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = String(req.headers['x-amz-target'] ?? '');
    const cloudTrail = CLOUDTRAIL_TARGET.exec(target);
    return cloudTrail ? handleCloudTrail(req, res, cloudTrail[1]!) : handleKms(req, res, target);
  }

  /** CloudTrail's API on the same endpoint: LookupEvents over the trail, for the caller's account and the signed region. Its own calls are not recorded. */
  async function handleCloudTrail(req: IncomingMessage, res: ServerResponse, operation: string): Promise<void> {
    try {
      const body = await readBody(req);
      if (req.method !== 'POST' || req.url !== '/') throw new KmsError('UnknownOperationException', '', 404);
      const now = clock();
      const auth = await verifySigV4({ method: req.method, url: req.url, headers: req.headers, body }, { region: regions, service: 'cloudtrail', principals: byKey, now });
      if ('error' in auth) throw new KmsError(auth.error.type, auth.error.message, auth.error.type === 'MissingAuthenticationTokenException' ? 403 : 400);
      if (operation !== 'LookupEvents') throw new KmsError('UnknownOperationException', `The simulator serves only CloudTrail's LookupEvents, not ${operation}`);
      const principal = auth.principal as SimulatedPrincipal;
      const caller = { arn: principal.arn, accountId: accountOfPrincipal(principal.arn)!, identityPolicies: principal.identityPolicies ?? [] };
      authorizeIam('cloudtrail:LookupEvents', caller);
      // CloudTrail: "The rate of lookup requests is limited to two per second, per account, per Region."
      const bucket = `${caller.accountId}/${auth.region}`;
      const recent = (recentLookups.get(bucket) ?? []).filter((t) => t > now.getTime() - 1000);
      if (recent.length >= lookupsPerSecond) throw new KmsError('ThrottlingException', 'Rate exceeded');
      recent.push(now.getTime());
      recentLookups.set(bucket, recent);
      // KMS deletes keys and expired material when they fall due, whether or not anyone calls KMS.
      state.expire(now);
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        throw new KmsError('SerializationException', 'Start of structure or map found where not expected.');
      }
      if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new KmsError('SerializationException', 'Expected a JSON object');
      send(res, 200, lookupEvents(trail, json, { accountId: caller.accountId, region: auth.region, now }));
    } catch (err) {
      const e = err instanceof KmsError ? err : new KmsError('InternalFailure', 'An internal error occurred.', 500);
      if (!res.headersSent) sendError(res, e);
    }
  }

  async function handleKms(req: IncomingMessage, res: ServerResponse, target: string): Promise<void> {
    const operation = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : '';
    const now = clock();
    const requestId = randomUUID();
    let caller: { arn: string; accessKeyId: string; sessionIssuedAt: Date } | null = null;
    let json: Record<string, unknown> = {};
    let response: Record<string, unknown> | undefined;
    let error: { code: string; message: string } | undefined;
    let ctx: CallContext | undefined;
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
      await faults.takeHook(operation)?.();
      if (req.method !== 'POST' || req.url !== '/') throw new KmsError('UnknownOperationException', '', 404);
      const auth = await verifySigV4({ method: req.method, url: req.url, headers: req.headers, body }, { region: regions, service: 'kms', principals: byKey, now });
      if ('error' in auth) throw new KmsError(auth.error.type, auth.error.message, auth.error.type === 'MissingAuthenticationTokenException' ? 403 : 400);
      // A regional endpoint answers only for its region: the Host and the credential scope must agree.
      const hostRegion = /^kms\.([a-z0-9-]+)\.amazonaws\.com(?::\d+)?$/.exec(String(req.headers.host ?? ''))?.[1];
      if (hostRegion !== undefined && hostRegion !== auth.region) {
        throw new KmsError('InvalidSignatureException', `Credential should be scoped to a valid region. Expected ${hostRegion}, got ${auth.region}.`);
      }
      const principal = auth.principal as SimulatedPrincipal;
      // Temporary credentials were issued a session duration before they expire; long-term keys have no session.
      caller = { arn: principal.arn, accessKeyId: principal.accessKeyId, sessionIssuedAt: principal.expiration ? new Date(principal.expiration.getTime() - sessionDurationMs) : startedAt };
      const handler = Object.hasOwn(OPERATIONS, operation) ? OPERATIONS[operation] : undefined;
      if (!handler) throw new KmsError('UnknownOperationException', '');
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8') || '{}');
      } catch {
        throw new KmsError('SerializationException', 'Start of structure or map found where not expected.');
      }
      if (typeof parsed !== 'object' || parsed === null) throw new KmsError('SerializationException', 'Expected a JSON object');
      json = parsed as Record<string, unknown>;
      ctx = {
        caller: { arn: principal.arn, accountId: accountOfPrincipal(principal.arn)!, identityPolicies: principal.identityPolicies ?? [] },
        now,
        region: auth.region,
        audit: { resources: [], requestParameters: {} },
      };
      const result = await handler(cfg, json, ctx);
      response = result;
      if (fault?.kind === 'truncate') {
        const text = JSON.stringify(result);
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'content-length': Buffer.byteLength(text) });
        res.write(text.slice(0, Math.floor(text.length / 2)));
        setImmediate(() => req.socket.destroy());
        return;
      }
      send(res, 200, result, requestId);
    } catch (err) {
      const kmsError = err instanceof KmsError ? err : new KmsError('KMSInternalException', 'An internal error occurred.', 500);
      error = { code: kmsError.type, message: kmsError.message };
      if (!res.headersSent) sendError(res, kmsError, requestId);
    } finally {
      const tls = req.socket as TLSSocket;
      const record = kmsEventRecord({
          eventName: operation || target,
          time: now,
          region: ctx?.region ?? region,
          caller,
          sourceIPAddress: req.socket.remoteAddress?.replace(/^::ffff:/, '') ?? '',
          userAgent: String(req.headers['user-agent'] ?? ''),
          body: json,
          ...(response ? { response } : {}),
          ...(error ? { error } : {}),
          keyArns: ctx?.audit.resources ?? [],
          ...(ctx?.audit.recipient ? { recipient: ctx.audit.recipient } : {}),
          requestId,
          eventId: randomUUID(),
          ...(typeof tls.getProtocol === 'function' ? { tls: { tlsVersion: tls.getProtocol() ?? '', cipherSuite: tls.getCipher()?.standardName ?? '', clientProvidedHostHeader: String(req.headers.host ?? '') } } : {}),
      });
      audit.push(record);
      trail.push(record);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    region,
    regions,
    accountId,
    accounts,
    url: `https://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    hostname,
    caPem: tls.caPem,
    principals,
    audit,
    serviceEvents,
    faults,
    principal(suffix, account = accountId) {
      const p = principals.find((x) => accountOfPrincipal(x.arn) === account && (x.arn.endsWith(suffix) || x.arn.includes(`/${suffix}/`) || x.arn.includes(`${suffix}/`)));
      if (!p) throw new TypeError(`no simulated principal of ${account} matches ${suffix}`);
      return p;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Validates a principal as AWS would issue it, and gives temporary credentials their expiration. */
function checkedPrincipal(p: SimulatedPrincipal, startedAt: Date, sessionDurationMs: number): SimulatedPrincipal {
  if (!accountOfPrincipal(p.arn)) throw new TypeError(`principal ARN ${p.arn} is not an IAM or STS ARN with a 12-digit account`);
  if (p.sessionToken === undefined) {
    if (p.accessKeyId.startsWith('ASIA')) throw new TypeError(`${p.accessKeyId}: temporary credentials (ASIA…) need a sessionToken`);
    if (p.expiration !== undefined) throw new TypeError(`${p.accessKeyId}: only temporary credentials expire`);
    return p;
  }
  if (p.accessKeyId.startsWith('AKIA')) throw new TypeError(`${p.accessKeyId}: long-term keys (AKIA…) never have a sessionToken`);
  return { ...p, expiration: p.expiration ?? new Date(startedAt.getTime() + sessionDurationMs) };
}
