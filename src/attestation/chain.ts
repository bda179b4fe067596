import { verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { NitroEnclaveError } from '../errors.js';
import { bytesEqual } from '../internal/bytes.js';
import { CertificateParseError, parseCertificate, type ParsedCertificate } from './certificate.js';

const ECDSA_HASH: Record<string, string> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
};

/**
 * Remembers parsed certificates and issuer→subject signatures that verified,
 * both keyed by SHA-256 of the DER. Only successes are stored, so a cache can
 * never turn a bad chain into a good one; validity windows are not cached.
 */
export class ChainCache {
  private readonly parsed = new Map<string, ParsedCertificate>();
  private readonly links = new Set<string>();

  constructor(private readonly capacity = 512) {}

  certificate(der: Uint8Array, fingerprint: string): ParsedCertificate {
    const hit = this.parsed.get(fingerprint);
    if (hit && bytesEqual(hit.der, der)) {
      // Least recently used goes first: a fresh leaf per document must not push out the CA chain.
      this.parsed.delete(fingerprint);
      this.parsed.set(fingerprint, hit);
      return hit;
    }
    const cert = parseCertificate(der);
    remember(this.parsed, fingerprint, cert, this.capacity);
    return cert;
  }

  hasLink(key: string): boolean {
    if (!this.links.delete(key)) return false;
    this.links.add(key);
    return true;
  }

  addLink(key: string): void {
    if (this.links.size >= this.capacity) this.links.delete(this.links.values().next().value!);
    this.links.add(key);
  }
}

function remember<K, V>(map: Map<K, V>, key: K, value: V, capacity: number): void {
  if (map.size >= capacity) map.delete(map.keys().next().value!);
  map.set(key, value);
}

export interface ChainCheckOptions {
  readonly anchors: ReadonlySet<string>;
  readonly currentDate: Date;
  readonly clockTolerance: number;
  readonly cache: ChainCache | null;
  readonly fingerprint: (der: Uint8Array) => string;
}

function chainError(message: string): NitroEnclaveError {
  return new NitroEnclaveError('ERR_ATTESTATION_CHAIN_INVALID', message);
}

function label(cert: ParsedCertificate, index: number, count: number): string {
  const role = index === 0 ? 'root' : index === count - 1 ? 'leaf' : `cabundle[${index}]`;
  return `${role} certificate${cert.subjectCommonName ? ` "${cert.subjectCommonName}"` : ''}`;
}

/**
 * Validates root → cabundle[1..] → leaf and returns the leaf. `cabundle[0]`
 * must be a trust anchor (pinned by fingerprint, so its own signature adds nothing).
 */
export async function verifyChain(cabundle: readonly Uint8Array[], leafDer: Uint8Array, opts: ChainCheckOptions): Promise<{ leaf: ParsedCertificate; leafKey: KeyObject }> {
  const ders = [...cabundle, leafDer];
  const fingerprints = ders.map(opts.fingerprint);
  if (!opts.anchors.has(fingerprints[0]!)) {
    throw new NitroEnclaveError(
      'ERR_ATTESTATION_UNTRUSTED_ROOT',
      `cabundle[0] (SHA-256 ${fingerprints[0]}) is not a trusted root; expected one of: ${[...opts.anchors].join(', ')}`,
    );
  }
  const certs = ders.map((der, i) => {
    try {
      return opts.cache ? opts.cache.certificate(der, fingerprints[i]!) : parseCertificate(der);
    } catch (err) {
      if (err instanceof CertificateParseError) {
        throw chainError(`${i === ders.length - 1 ? 'leaf certificate' : `cabundle[${i}]`} cannot be parsed: ${err.message}`);
      }
      throw err;
    }
  });
  const count = certs.length;

  for (let i = 1; i < count; i++) {
    const issuer = certs[i - 1]!;
    const subject = certs[i]!;
    const issuerLabel = label(issuer, i - 1, count);
    if (!issuer.basicConstraints?.ca) throw chainError(`${issuerLabel} issues a certificate but is not a CA (basicConstraints)`);
    if (!issuer.keyUsage?.keyCertSign) throw chainError(`${issuerLabel} lacks the keyCertSign key usage`);
    const following = count - 2 - (i - 1);
    const pathLength = issuer.basicConstraints.pathLength;
    if (pathLength !== null && following > pathLength) {
      throw chainError(`${issuerLabel} allows ${pathLength} CA certificate(s) below it, the chain has ${following}`);
    }
    if (!bytesEqual(subject.issuer, issuer.subject)) {
      throw chainError(`${label(subject, i, count)} was not issued by ${issuerLabel} (names differ): wrong chain order?`);
    }
    const linkKey = `${fingerprints[i - 1]}>${fingerprints[i]}`;
    if (opts.cache?.hasLink(linkKey)) continue;
    const hash = ECDSA_HASH[subject.signatureAlgorithm];
    if (!hash) {
      throw new NitroEnclaveError('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', `${label(subject, i, count)} is signed with ${subject.signatureAlgorithm}; only ECDSA is supported`);
    }
    if (issuer.keyType.algorithm !== 'ec') throw chainError(`${issuerLabel} does not hold an EC key`);
    const key = await keyOf(issuer, issuerLabel);
    let ok = false;
    try {
      ok = cryptoVerify(hash, subject.tbs, key, subject.signature);
    } catch {
      ok = false;
    }
    if (!ok) throw chainError(`signature of ${label(subject, i, count)} does not verify with the key of ${issuerLabel}`);
    opts.cache?.addLink(linkKey);
  }

  const now = opts.currentDate.getTime();
  for (let i = 0; i < count; i++) {
    const cert = certs[i]!;
    if (now - opts.clockTolerance > cert.notAfter.getTime()) {
      throw new NitroEnclaveError('ERR_ATTESTATION_CERT_EXPIRED', `${label(cert, i, count)} expired at ${cert.notAfter.toISOString()} (checked at ${opts.currentDate.toISOString()})`);
    }
    if (now + opts.clockTolerance < cert.notBefore.getTime()) {
      throw new NitroEnclaveError('ERR_ATTESTATION_CERT_NOT_YET_VALID', `${label(cert, i, count)} is not valid before ${cert.notBefore.toISOString()} (checked at ${opts.currentDate.toISOString()})`);
    }
  }

  const leaf = certs[count - 1]!;
  if (leaf.basicConstraints?.ca) throw chainError('leaf certificate is a CA certificate');
  if (!leaf.keyUsage?.digitalSignature) throw chainError('leaf certificate lacks the digitalSignature key usage');
  if (leaf.keyType.algorithm !== 'ec' || leaf.keyType.curve !== 'P-384') throw chainError('leaf certificate key is not ECDSA P-384');
  return { leaf, leafKey: await keyOf(leaf, 'leaf certificate') };
}

async function keyOf(cert: ParsedCertificate, what: string): Promise<KeyObject> {
  try {
    return await cert.publicKey();
  } catch (err) {
    throw chainError(`${what} has an unusable public key: ${err instanceof Error ? err.message : String(err)}`);
  }
}
