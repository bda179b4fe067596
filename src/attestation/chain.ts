import { NitroEnclaveError } from '../errors.js';
import { bytesEqual, copyBytes } from '../internal/bytes.js';
import { CertificateParseError, parseCertificate, type ParsedCertificate } from './certificate.js';
import { derSignatureToP1363, isStrictDerSignature, webCryptoBackend, type CryptoBackend, type ShaName, type VerifyKey } from './webcrypto.js';

const ECDSA_HASH: Record<string, ShaName> = {
  '1.2.840.10045.4.3.2': 'SHA-256',
  '1.2.840.10045.4.3.3': 'SHA-384',
  '1.2.840.10045.4.3.4': 'SHA-512',
};

/**
 * A cheap lookup key: the length and the last 4 bytes, which lie in the certificate's signature
 * (random per certificate), as one number (a Map hashes a number faster than a string built per
 * lookup, which was most of a warm lookup's cost). It only finds a candidate: a hit counts only
 * when the cached DER equals the input byte for byte, so a collision costs a re-parse, never
 * trust; anyone can make one (as with the FNV-1a hash of the whole DER before, which read every
 * byte twice per lookup). SHA-256 through WebCrypto is asynchronous and a thread hop per
 * certificate on the warm path.
 */
function lookupKey(der: Uint8Array): number {
  const n = der.length;
  let tail = 0;
  for (let i = Math.max(0, n - 4); i < n; i++) tail = tail * 256 + der[i]!;
  // n < 2^21 (documents are at most 16 KiB) and tail < 2^32: exact in a double.
  return n * 0x100000000 + tail;
}

/**
 * Remembers parsed certificates (confirmed by their full DER) and which issuer→subject
 * signatures verified. Links hang off the cached certificate objects themselves, so a link
 * can only be found for the exact bytes that verified. Only successes are stored, so a cache
 * can never turn a bad chain into a good one; validity windows are never cached.
 */
export class ChainCache {
  private readonly parsed = new Map<number, ParsedCertificate>();
  private readonly links = new WeakMap<ParsedCertificate, WeakSet<ParsedCertificate>>();

  constructor(
    private readonly capacity = 512,
    readonly backend: CryptoBackend = webCryptoBackend,
  ) {}

  /** The parsed certificate for `der`; `key` only picks the slot (default: a fast hash of the DER). */
  certificate(der: Uint8Array, key: number = lookupKey(der)): ParsedCertificate {
    // Parsed from a private copy: the DER a caller holds (in the verified facts) can be changed by
    // them later, and a cached certificate must keep the bytes its verified links were made for.
    return this.hit(der, key) ?? this.store(key, parseCertificate(copyBytes(der), this.backend));
  }

  /**
   * {@link certificate} for each of `ders`, in order, with a parse failure in the place of its
   * certificate. The misses are copied into one private buffer together: each copy was an
   * off-heap allocation of its own, microseconds apiece with its collection (measured).
   */
  certificates(ders: readonly Uint8Array[]): Array<ParsedCertificate | CertificateParseError> {
    const out: Array<ParsedCertificate | CertificateParseError | undefined> = [];
    const keys: number[] = [];
    let missing = 0;
    for (const der of ders) {
      const key = lookupKey(der);
      const hit = this.hit(der, key);
      keys.push(key);
      out.push(hit ?? undefined);
      if (!hit) missing += der.length;
    }
    if (missing > 0) {
      const copy = new Uint8Array(missing);
      let at = 0;
      for (let i = 0; i < ders.length; i++) {
        if (out[i]) continue;
        const der = ders[i]!;
        copy.set(der, at);
        const own = copy.subarray(at, (at += der.length));
        try {
          out[i] = this.store(keys[i]!, parseCertificate(own, this.backend));
        } catch (err) {
          if (!(err instanceof CertificateParseError)) throw err;
          out[i] = err;
        }
      }
    }
    return out as Array<ParsedCertificate | CertificateParseError>;
  }

  private hit(der: Uint8Array, key: number): ParsedCertificate | null {
    const hit = this.parsed.get(key);
    if (!hit || !bytesEqual(hit.der, der)) return null;
    // Least recently used goes first: a fresh leaf per document must not push out the CA chain.
    this.parsed.delete(key);
    this.parsed.set(key, hit);
    return hit;
  }

  private store(key: number, cert: ParsedCertificate): ParsedCertificate {
    if (this.parsed.has(key)) this.parsed.delete(key);
    else if (this.parsed.size >= this.capacity) this.parsed.delete(this.parsed.keys().next().value!);
    this.parsed.set(key, cert);
    return cert;
  }

  hasLink(issuer: ParsedCertificate, subject: ParsedCertificate): boolean {
    return this.links.get(subject)?.has(issuer) ?? false;
  }

  addLink(issuer: ParsedCertificate, subject: ParsedCertificate): void {
    let set = this.links.get(subject);
    if (!set) this.links.set(subject, (set = new WeakSet()));
    set.add(issuer);
  }
}

/**
 * Trust anchors are the same bytes in every verifier: their parsed form, fingerprint and imported
 * key are shared by the verifiers of one backend, so a fresh verifier does not import the pinned
 * root's key again (one P-384 key import, about a tenth of a cold verification's crypto, measured).
 * Only a certificate whose SHA-256 was a trust anchor of the verification that met it enters, as a
 * private copy, found again only by identical bytes; each verification still checks the
 * fingerprint against its own anchors.
 */
const sharedAnchors = new WeakMap<CryptoBackend, Map<number, ParsedCertificate>>();
const SHARED_ANCHORS_MAX = 16;

function knownAnchor(backend: CryptoBackend, der: Uint8Array, key: number): ParsedCertificate | null {
  const hit = sharedAnchors.get(backend)?.get(key);
  return hit && bytesEqual(hit.der, der) ? hit : null;
}

function rememberAnchor(backend: CryptoBackend, der: Uint8Array, key: number): ParsedCertificate | null {
  let anchors = sharedAnchors.get(backend);
  if (!anchors) sharedAnchors.set(backend, (anchors = new Map()));
  if (anchors.size >= SHARED_ANCHORS_MAX) return null;
  try {
    const cert = parseCertificate(copyBytes(der), backend);
    anchors.set(key, cert);
    return cert;
  } catch {
    return null;
  }
}

export interface ChainCheckOptions {
  /** Lower-case hex SHA-256 fingerprints of the trusted roots. */
  readonly anchors: ReadonlySet<string>;
  readonly currentDate: Date;
  readonly clockToleranceMs: number;
  readonly cache: ChainCache | null;
  /** Must be the cache's backend when there is a cache. */
  readonly backend: CryptoBackend;
}

function chainError(message: string): NitroEnclaveError {
  return new NitroEnclaveError('ERR_ATTESTATION_CHAIN_INVALID', message);
}

function label(cert: ParsedCertificate, index: number, count: number): string {
  const role = index === 0 ? 'root' : index === count - 1 ? 'leaf' : `cabundle[${index}]`;
  return `${role} certificate${cert.subjectCommonName ? ` "${cert.subjectCommonName}"` : ''}`;
}

/** Settles to an error or null: never rejects, so work started in parallel cannot leak an unhandled rejection. */
type Job = Promise<NitroEnclaveError | null>;

async function keyOf(cert: ParsedCertificate, what: string | (() => string)): Promise<VerifyKey> {
  try {
    return await cert.publicKey();
  } catch (err) {
    throw chainError(`${typeof what === 'string' ? what : what()} has an unusable public key: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function verifyLink(issuer: ParsedCertificate, subject: ParsedCertificate, hash: ShaName, issuerLabel: () => string, subjectLabel: () => string, cache: ChainCache | null, backend: CryptoBackend): Job {
  try {
    // A key already imported (the pinned root's, shared by every verifier) starts its verify at
    // once, before this chain's other keys are imported, so a pool thread has it while they are.
    const key = issuer.importedKey() ?? (await keyOf(issuer, issuerLabel));
    const curve = issuer.keyType.curve;
    let ok: boolean;
    if (!curve) ok = false;
    else if (backend.ecdsaVerifyDer && !backend.ecdsaVerifyConcurrent) {
      // The same strict-DER check as the conversion below, without the converted copy.
      ok = isStrictDerSignature(subject.signature, curve) && (await backend.ecdsaVerifyDer(key, hash, subject.signature, subject.tbs));
    } else {
      const signature = derSignatureToP1363(subject.signature, curve);
      // Off the event loop where the backend can: the links and the COSE check then run at once.
      const verify = backend.ecdsaVerifyConcurrent ?? backend.ecdsaVerify;
      ok = signature !== null && (await verify(key, hash, signature, subject.tbs));
    }
    if (!ok) return chainError(`signature of ${subjectLabel()} does not verify with the key of ${issuerLabel()}`);
    cache?.addLink(issuer, subject);
    return null;
  } catch (err) {
    return err instanceof NitroEnclaveError ? err : chainError(`signature of ${subjectLabel()} cannot be checked`);
  }
}

/**
 * Validates root → cabundle[1..] → leaf, then runs `withLeafKey` (the COSE signature check).
 * `cabundle[0]` must be a trust anchor (pinned by fingerprint, so its own signature adds
 * nothing). The signature checks run in parallel (WebCrypto may use several threads), and
 * their results are judged in chain order, so the error is the one a sequential walk reports.
 */
export async function verifyChain(
  cabundle: readonly Uint8Array[],
  leafDer: Uint8Array,
  opts: ChainCheckOptions,
  withLeafKey: (key: VerifyKey) => Job,
): Promise<{ leaf: ParsedCertificate }> {
  const ders = [...cabundle, leafDer];
  const parse = (der: Uint8Array): ParsedCertificate | CertificateParseError => {
    try {
      return opts.cache ? opts.cache.certificate(der) : parseCertificate(der, opts.backend);
    } catch (err) {
      if (err instanceof CertificateParseError) return err;
      throw err;
    }
  };
  // The root is judged by its fingerprint first, before anything else about the chain.
  const rootKey = lookupKey(ders[0]!);
  const shared = knownAnchor(opts.backend, ders[0]!, rootKey);
  let root = shared ?? parse(ders[0]!);
  const rootFingerprint = root instanceof CertificateParseError ? await opts.backend.sha256Hex(ders[0]!) : await root.fingerprint();
  if (!opts.anchors.has(rootFingerprint)) {
    throw new NitroEnclaveError(
      'ERR_ATTESTATION_UNTRUSTED_ROOT',
      `cabundle[0] (SHA-256 ${rootFingerprint}) is not a trusted root; expected one of: ${[...opts.anchors].join(', ')}`,
    );
  }
  if (!shared && !(root instanceof CertificateParseError)) root = rememberAnchor(opts.backend, ders[0]!, rootKey) ?? root;
  const rest = opts.cache ? opts.cache.certificates(ders.slice(1)) : ders.slice(1).map(parse);
  const chain = ders.map((_der, i) => {
    const cert = i === 0 ? root : rest[i - 1]!;
    if (cert instanceof CertificateParseError) {
      throw chainError(`${i === ders.length - 1 ? 'leaf certificate' : `cabundle[${i}]`} cannot be parsed: ${cert.message}`);
    }
    return cert;
  });
  const count = chain.length;
  const jobs: Job[] = [];
  const run = (job: Job) => {
    jobs.push(job);
  };
  {
    for (let i = 1; i < count; i++) {
      const issuer = chain[i - 1]!;
      const subject = chain[i]!;
      // Labels only for messages: reading a subject CN is not free, and the warm path throws nothing.
      const issuerLabel = () => label(issuer, i - 1, count);
      const subjectLabel = () => label(subject, i, count);
      if (!issuer.basicConstraints?.ca) throw chainError(`${issuerLabel()} issues a certificate but is not a CA (basicConstraints)`);
      if (!issuer.keyUsage?.keyCertSign) throw chainError(`${issuerLabel()} lacks the keyCertSign key usage`);
      const following = count - 2 - (i - 1);
      const pathLength = issuer.basicConstraints.pathLength;
      if (pathLength !== null && following > pathLength) {
        throw chainError(`${issuerLabel()} allows ${pathLength} CA certificate(s) below it, the chain has ${following}`);
      }
      if (!bytesEqual(subject.issuer, issuer.subject)) {
        throw chainError(`${subjectLabel()} was not issued by ${issuerLabel()} (names differ): wrong chain order?`);
      }
      if (opts.cache?.hasLink(issuer, subject)) continue;
      const hash = ECDSA_HASH[subject.signatureAlgorithm];
      if (!hash) {
        throw new NitroEnclaveError('ERR_ATTESTATION_UNSUPPORTED_ALGORITHM', `${subjectLabel()} is signed with ${subject.signatureAlgorithm}; only ECDSA is supported`);
      }
      if (issuer.keyType.algorithm !== 'ec') throw chainError(`${issuerLabel()} does not hold an EC key`);
      run(verifyLink(issuer, subject, hash, issuerLabel, subjectLabel, opts.cache, opts.backend));
    }
    const leaf = chain[count - 1]!;
    const leafProblem = leaf.basicConstraints?.ca
      ? 'leaf certificate is a CA certificate'
      : !leaf.keyUsage?.digitalSignature
        ? 'leaf certificate lacks the digitalSignature key usage'
        : leaf.keyType.algorithm !== 'ec' || leaf.keyType.curve !== 'P-384'
          ? 'leaf certificate key is not ECDSA P-384'
          : null;
    const leafJob: Job | null = leafProblem
      ? null
      : keyOf(leaf, 'leaf certificate')
          .then(withLeafKey)
          .catch((err: unknown) => (err instanceof NitroEnclaveError ? err : chainError('leaf certificate key is unusable')));

    for (const job of jobs) {
      const err = await job;
      if (err) throw err;
    }

    const now = opts.currentDate.getTime();
    for (let i = 0; i < count; i++) {
      const cert = chain[i]!;
      // Written so that a NaN anywhere fails the check rather than passing it.
      if (!(now - opts.clockToleranceMs <= cert.notAfter.getTime())) {
        throw new NitroEnclaveError('ERR_ATTESTATION_CERT_EXPIRED', `${label(cert, i, count)} expired at ${cert.notAfter.toISOString()} (checked at ${opts.currentDate.toISOString()})`);
      }
      if (!(now + opts.clockToleranceMs >= cert.notBefore.getTime())) {
        throw new NitroEnclaveError('ERR_ATTESTATION_CERT_NOT_YET_VALID', `${label(cert, i, count)} is not valid before ${cert.notBefore.toISOString()} (checked at ${opts.currentDate.toISOString()})`);
      }
    }
    if (leafProblem || !leafJob) throw chainError(leafProblem ?? 'leaf certificate unusable');
    const err = await leafJob;
    if (err) throw err;
    return { leaf };
  }
}
