import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';

/** A principal the simulator knows: its credentials and its ARN. */
export interface TestPrincipal {
  accessKeyId: string;
  secretAccessKey: string;
  /** When set, requests must carry it as `x-amz-security-token` (temporary credentials). */
  sessionToken?: string;
  /** e.g. `arn:aws:sts::111122223333:assumed-role/EnclaveInstanceRole/i-0abc`. */
  arn: string;
  /** When temporary credentials stop working (`ExpiredTokenException`), by the simulator's clock. */
  expiration?: Date;
}

export type SigV4Failure = {
  type: 'MissingAuthenticationTokenException' | 'IncompleteSignatureException' | 'InvalidSignatureException' | 'UnrecognizedClientException' | 'ExpiredTokenException';
  message: string;
};

const toBytes = (d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array =>
  typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/**
 * SHA-256, or HMAC-SHA-256 when given a secret, from `node:crypto`, in the
 * Checksum shape `@smithy/signature-v4` takes.
 *
 * @example
 * ```ts
 * const signer = new SignatureV4({ service: 'kms', region: 'us-east-1', credentials, sha256: NodeSha256 });
 * ```
 */
export class NodeSha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
  reset(): void {
    throw new Error('NodeSha256 is single-use');
  }
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * Verifies an AWS Signature Version 4 request for `service` in `region`,
 * the way AWS does: the credential scope, a clock skew of at most 5 minutes,
 * the canonical request over the signed headers and the body hash, and the
 * session token for temporary credentials. The signature itself is
 * recomputed by `@smithy/signature-v4` (the AWS SDK's own signer) over exactly
 * the headers the client signed, and compared in constant time.
 */
export async function verifySigV4(
  req: { method: string; url: string; headers: IncomingHttpHeaders; body: Uint8Array },
  opts: { region: string | readonly string[]; service: string; principals: ReadonlyMap<string, TestPrincipal>; now: Date },
): Promise<{ principal: TestPrincipal; region: string } | { error: SigV4Failure }> {
  const auth = header(req.headers, 'authorization');
  if (!auth) return { error: { type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' } };
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return { error: { type: 'IncompleteSignatureException', message: 'Authorization header requires Credential, SignedHeaders and Signature.' } };
  const [, accessKeyId, date, region, service, signedHeaderList, signature] = m as unknown as [string, string, string, string, string, string, string];
  const principal = opts.principals.get(accessKeyId);
  if (!principal) return { error: { type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' } };
  const regions = typeof opts.region === 'string' ? [opts.region] : opts.region;
  if (!regions.includes(region) || service !== opts.service) {
    return { error: { type: 'InvalidSignatureException', message: `Credential should be scoped to a valid region and service: expected ${regions.join(' or ')}/${opts.service}, got ${region}/${service}.` } };
  }
  const amzDate = header(req.headers, 'x-amz-date') ?? '';
  const when = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!when || !amzDate.startsWith(date)) return { error: { type: 'IncompleteSignatureException', message: 'X-Amz-Date must be a valid ISO 8601 basic date matching the credential scope.' } };
  const signedAt = Date.UTC(+when[1]!, +when[2]! - 1, +when[3]!, +when[4]!, +when[5]!, +when[6]!);
  if (Math.abs(opts.now.getTime() - signedAt) > 5 * 60_000) {
    return { error: { type: 'InvalidSignatureException', message: `Signature expired: ${amzDate} is now earlier or later than the allowed 5 minutes of ${opts.now.toISOString()}.` } };
  }
  const signedHeaders = signedHeaderList.split(';');
  if (!signedHeaders.includes('host')) return { error: { type: 'InvalidSignatureException', message: 'The host header must be signed.' } };
  const token = header(req.headers, 'x-amz-security-token');
  // Long-term keys (AKIA) never come with a session token; temporary ones (ASIA) always do, and expire.
  if (token !== undefined && principal.sessionToken === undefined) return { error: { type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' } };
  if (principal.sessionToken !== undefined && token !== principal.sessionToken) {
    return { error: { type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' } };
  }
  if (principal.expiration !== undefined && !(opts.now.getTime() < principal.expiration.getTime())) {
    return { error: { type: 'ExpiredTokenException', message: 'The security token included in the request is expired' } };
  }
  // The signer takes a payload hash header at its word; AWS checks it against the body, so do we.
  const claimedHash = header(req.headers, 'x-amz-content-sha256');
  if (claimedHash !== undefined && claimedHash !== createHash('sha256').update(req.body).digest('hex')) {
    return { error: { type: 'InvalidSignatureException', message: "The provided 'x-amz-content-sha256' header does not match what was computed." } };
  }
  const url = new URL(req.url, 'https://placeholder');
  const headers: Record<string, string> = {};
  for (const h of signedHeaders) headers[h] = header(req.headers, h) ?? '';
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) query[k] = k in query ? [query[k]!].flat().concat(v) : v;
  const signedToken = headers['x-amz-security-token'];
  const signer = new SignatureV4({
    service,
    region,
    sha256: NodeSha256,
    applyChecksum: false, // sign only what the client signed
    credentials: { accessKeyId, secretAccessKey: principal.secretAccessKey, ...(signedToken !== undefined ? { sessionToken: signedToken } : {}) },
  });
  const resigned = await signer.sign(
    { method: req.method, protocol: 'https:', hostname: url.hostname, path: url.pathname, query, headers, body: req.body },
    { signingDate: new Date(signedAt), signableHeaders: new Set(signedHeaders) },
  );
  const ours = /SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(String(resigned.headers.authorization ?? ''));
  const expected = Buffer.from(ours?.[2] ?? '', 'hex');
  if (ours?.[1] !== signedHeaderList || expected.length !== 32 || !timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
    return {
      error: {
        type: 'InvalidSignatureException',
        message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      },
    };
  }
  return { principal, region };
}
