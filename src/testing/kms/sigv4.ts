import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

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

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');
const hmac = (key: Uint8Array | string, data: string) => createHmac('sha256', key).update(data).digest();

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** RFC 3986 encoding as SigV4 wants it. */
const uriEncode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function canonicalQuery(search: string): string {
  const params = [...new URLSearchParams(search)].map(([k, v]) => [uriEncode(k), uriEncode(v)] as const);
  params.sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return params.map(([k, v]) => `${k}=${v}`).join('&');
}

/**
 * Verifies an AWS Signature Version 4 request for `service` in `region`,
 * the way AWS does: the credential scope, a clock skew of at most 5 minutes,
 * the canonical request over the signed headers and the body hash, and the
 * session token for temporary credentials.
 */
export function verifySigV4(
  req: { method: string; url: string; headers: IncomingHttpHeaders; body: Uint8Array },
  opts: { region: string; service: string; principals: ReadonlyMap<string, TestPrincipal>; now: Date },
): { principal: TestPrincipal } | { error: SigV4Failure } {
  const auth = header(req.headers, 'authorization');
  if (!auth) return { error: { type: 'MissingAuthenticationTokenException', message: 'Missing Authentication Token' } };
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return { error: { type: 'IncompleteSignatureException', message: 'Authorization header requires Credential, SignedHeaders and Signature.' } };
  const [, accessKeyId, date, region, service, signedHeaderList, signature] = m as unknown as [string, string, string, string, string, string, string];
  const principal = opts.principals.get(accessKeyId);
  if (!principal) return { error: { type: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.' } };
  if (region !== opts.region || service !== opts.service) {
    return { error: { type: 'InvalidSignatureException', message: `Credential should be scoped to a valid region and service: expected ${opts.region}/${opts.service}, got ${region}/${service}.` } };
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
  const url = new URL(req.url, 'https://placeholder');
  const canonicalHeaders = signedHeaders.map((h) => `${h}:${(header(req.headers, h) ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const payloadHash = header(req.headers, 'x-amz-content-sha256') ?? sha256(req.body);
  const canonicalPath = url.pathname.split('/').map((s) => uriEncode(decodeURIComponent(s))).join('/');
  const canonicalRequest = [req.method, canonicalPath, canonicalQuery(url.search), canonicalHeaders, signedHeaderList, payloadHash].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${principal.secretAccessKey}`, date), region), service), 'aws4_request');
  const expected = hmac(key, stringToSign);
  if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
    return {
      error: {
        type: 'InvalidSignatureException',
        message: 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
      },
    };
  }
  return { principal };
}
