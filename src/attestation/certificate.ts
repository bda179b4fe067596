import { TAG, children, content, decodeBoolean, decodeOid, decodeTime, expectTag, readNode, whole } from '../internal/asn1.js';
import { webCryptoBackend, type CryptoBackend, type EcCurve, type VerifyKey } from './webcrypto.js';

/** The parts of an X.509 certificate that chain validation needs, parsed from DER. */
export interface ParsedCertificate {
  readonly der: Uint8Array;
  /** Hex SHA-256 of the DER (for pinning), computed once on first use. */
  fingerprint(): Promise<string>;
  readonly tbs: Uint8Array;
  readonly signatureAlgorithm: string;
  readonly signature: Uint8Array;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly subjectCommonName: string | null;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Uint8Array;
  /** `'ec'` with its curve (`'P-384'`…), or the SPKI algorithm OID for anything else. */
  readonly keyType: { readonly algorithm: 'ec'; readonly curve: EcCurve } | { readonly algorithm: string; readonly curve: null };
  /** The subject public key (EC only), imported once on first use through WebCrypto. */
  publicKey(): Promise<VerifyKey>;
  /** The key once {@link publicKey}'s import has finished, else `null`: lets a caller start work at once. */
  importedKey(): VerifyKey | null;
  /** `null` when the certificate has no basicConstraints extension. */
  readonly basicConstraints: { readonly ca: boolean; readonly pathLength: number | null } | null;
  /** Key usage bits, `null` when the extension is absent. */
  readonly keyUsage: { readonly digitalSignature: boolean; readonly keyCertSign: boolean } | null;
}

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_EC_PUBLIC_KEY_TEXT = '1.2.840.10045.2.1';
const OID_KEY_USAGE = '2.5.29.15';
const OID_COMMON_NAME = '2.5.4.3';
/** Extensions we understand; any other critical extension makes the certificate unusable (RFC 5280 §4.2). */
const KNOWN_CRITICAL = new Set([OID_BASIC_CONSTRAINTS, OID_KEY_USAGE]);

const utf8 = new TextDecoder();

/**
 * The OIDs a Nitro certificate carries, by their content bytes: matching them byte for byte
 * spares building a dotted string for each (decodeOid was 4 % of a cold verification's own
 * JavaScript in a --cpu-prof). Any other OID is decoded, and validated, as before.
 */
/** @internal Exported for the test that checks each entry against decodeOid. */
export const KNOWN_OIDS: ReadonlyArray<readonly [Uint8Array, string]> = (
  [
    [[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03], '1.2.840.10045.4.3.3'], // ecdsa-with-SHA384
    [[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02], '1.2.840.10045.4.3.2'], // ecdsa-with-SHA256
    [[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01], OID_EC_PUBLIC_KEY_TEXT],
    [[0x2b, 0x81, 0x04, 0x00, 0x22], '1.3.132.0.34'], // secp384r1
    [[0x55, 0x1d, 0x13], OID_BASIC_CONSTRAINTS],
    [[0x55, 0x1d, 0x0f], OID_KEY_USAGE],
    [[0x55, 0x1d, 0x0e], '2.5.29.14'], // subjectKeyIdentifier
    [[0x55, 0x1d, 0x23], '2.5.29.35'], // authorityKeyIdentifier
    [[0x55, 0x1d, 0x1f], '2.5.29.31'], // cRLDistributionPoints
  ] as const
).map(([bytes, text]) => [Uint8Array.from(bytes), text] as const);

/** The dotted text of the OID `node` (tag already checked) holds; no view is made for a known one. */
/** @internal */
export function oidAt(buf: Uint8Array, node: ReturnType<typeof readNode>): string {
  const start = node.contentStart;
  const length = node.contentEnd - start;
  for (const [known, text] of KNOWN_OIDS) {
    if (known.length !== length) continue;
    let i = 0;
    while (i < length && buf[start + i] === known[i]) i++;
    if (i === length) return text;
  }
  return decodeOid(content(buf, node));
}

export class CertificateParseError extends Error {
  override name = 'CertificateParseError';
}

/** Parses one DER certificate. Throws {@link CertificateParseError} on anything unexpected. */
export function parseCertificate(der: Uint8Array, backend: CryptoBackend = webCryptoBackend): ParsedCertificate {
  try {
    return parse(der, backend);
  } catch (err) {
    if (err instanceof CertificateParseError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new CertificateParseError(`invalid certificate DER: ${reason}`);
  }
}

function parse(der: Uint8Array, backend: CryptoBackend): ParsedCertificate {
  const root = expectTag(readNode(der, 0, der.length), TAG.SEQUENCE, 'Certificate');
  if (root.end !== der.length) throw new CertificateParseError('trailing bytes after certificate');
  const [tbsNode, algNode, sigNode, extra] = children(der, root);
  if (extra) throw new CertificateParseError('Certificate has more than three elements');
  expectTag(tbsNode, TAG.SEQUENCE, 'tbsCertificate');
  const signatureAlgorithm = algorithmOid(der, expectTag(algNode, TAG.SEQUENCE, 'signatureAlgorithm'));
  const signature = bitString(der, expectTag(sigNode, TAG.BIT_STRING, 'signatureValue'));

  const tbsParts = children(der, tbsNode!);
  let i = 0;
  let version = 1;
  if (tbsParts[0]?.tag === 0xa0) {
    const [v] = children(der, tbsParts[0]);
    version = Number(smallInteger(der, expectTag(v, TAG.INTEGER, 'version'))) + 1;
    i++;
  }
  expectTag(tbsParts[i++], TAG.INTEGER, 'serialNumber');
  const innerAlg = algorithmOid(der, expectTag(tbsParts[i++], TAG.SEQUENCE, 'signature'));
  if (innerAlg !== signatureAlgorithm) throw new CertificateParseError('signature algorithms in tbsCertificate and Certificate differ');
  const issuerNode = expectTag(tbsParts[i++], TAG.SEQUENCE, 'issuer');
  const validity = children(der, expectTag(tbsParts[i++], TAG.SEQUENCE, 'validity'));
  if (validity.length !== 2) throw new CertificateParseError('validity must have two times');
  const notBefore = decodeTime(der, validity[0]!);
  const notAfter = decodeTime(der, validity[1]!);
  const subjectNode = expectTag(tbsParts[i++], TAG.SEQUENCE, 'subject');
  const spkiNode = expectTag(tbsParts[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo');
  const spki = whole(der, spkiNode);

  let basicConstraints: ParsedCertificate['basicConstraints'] = null;
  let keyUsage: ParsedCertificate['keyUsage'] = null;
  for (; i < tbsParts.length; i++) {
    const node = tbsParts[i]!;
    if (node.tag === 0x81 || node.tag === 0x82) continue; // issuer/subject unique IDs
    if (node.tag !== 0xa3) throw new CertificateParseError(`unexpected element 0x${node.tag.toString(16)} in tbsCertificate`);
    if (version !== 3) throw new CertificateParseError('extensions in a certificate that is not v3');
    const [list] = children(der, node);
    const seen = new Set<string>();
    for (const ext of children(der, expectTag(list, TAG.SEQUENCE, 'extensions'))) {
      const parts = children(der, expectTag(ext, TAG.SEQUENCE, 'extension'));
      const oid = oidAt(der, expectTag(parts[0], TAG.OID, 'extnID'));
      if (seen.has(oid)) throw new CertificateParseError(`duplicate extension ${oid}`);
      seen.add(oid);
      let critical = false;
      let valueNode = parts[1];
      if (valueNode?.tag === TAG.BOOLEAN) {
        critical = decodeBoolean(der, valueNode);
        valueNode = parts[2];
      }
      const value = content(der, expectTag(valueNode, TAG.OCTET_STRING, 'extnValue'));
      if (oid === OID_BASIC_CONSTRAINTS) basicConstraints = parseBasicConstraints(value);
      else if (oid === OID_KEY_USAGE) keyUsage = parseKeyUsage(value);
      else if (critical && !KNOWN_CRITICAL.has(oid)) throw new CertificateParseError(`unsupported critical extension ${oid}`);
    }
  }

  const keyType = subjectKeyType(der, spkiNode);
  let imported: Promise<VerifyKey> | undefined;
  let ready: VerifyKey | null = null;
  let fingerprint: Promise<string> | undefined;

  return {
    der,
    fingerprint() {
      fingerprint ??= backend.sha256Hex(der);
      return fingerprint;
    },
    tbs: whole(der, tbsNode!),
    signatureAlgorithm,
    signature,
    issuer: whole(der, issuerNode),
    subject: whole(der, subjectNode),
    get subjectCommonName() {
      return commonName(der, subjectNode);
    },
    notBefore,
    notAfter,
    spki,
    keyType,
    publicKey() {
      imported ??= importKey(spki, keyType, backend).then((key) => (ready = key));
      return imported;
    },
    importedKey() {
      return ready;
    },
    basicConstraints,
    keyUsage,
  };
}

const OID_EC_PUBLIC_KEY = OID_EC_PUBLIC_KEY_TEXT;
const CURVES: Record<string, EcCurve> = { '1.2.840.10045.3.1.7': 'P-256', '1.3.132.0.34': 'P-384', '1.3.132.0.35': 'P-521' };

function subjectKeyType(buf: Uint8Array, spki: ReturnType<typeof readNode>): ParsedCertificate['keyType'] {
  const [alg, key] = children(buf, spki);
  const [algOid, params] = children(buf, expectTag(alg, TAG.SEQUENCE, 'AlgorithmIdentifier'));
  expectTag(key, TAG.BIT_STRING, 'subjectPublicKey');
  const algorithm = oidAt(buf, expectTag(algOid, TAG.OID, 'algorithm'));
  if (algorithm !== OID_EC_PUBLIC_KEY) return { algorithm, curve: null };
  const curve = params?.tag === TAG.OID ? CURVES[oidAt(buf, params)] : undefined;
  if (!curve) throw new CertificateParseError('EC key on an unsupported curve');
  return { algorithm: 'ec', curve };
}

/** Imports the raw EC point through WebCrypto; only EC keys are ever used to verify. */
async function importKey(spki: Uint8Array, keyType: ParsedCertificate['keyType'], backend: CryptoBackend): Promise<VerifyKey> {
  if (keyType.algorithm !== 'ec' || !keyType.curve) throw new CertificateParseError('subject key is not an EC key');
  try {
    const node = readNode(spki, 0, spki.length);
    const bits = content(spki, children(spki, node)[1]!);
    if (bits[0] !== 0) throw new CertificateParseError('public key BIT STRING has unused bits');
    return await backend.importEcPoint(bits.subarray(1), keyType.curve);
  } catch {
    throw new CertificateParseError('unusable subjectPublicKeyInfo');
  }
}

function algorithmOid(buf: Uint8Array, node: ReturnType<typeof readNode>): string {
  const [oid] = children(buf, node);
  return oidAt(buf, expectTag(oid, TAG.OID, 'algorithm'));
}

function bitString(buf: Uint8Array, node: ReturnType<typeof readNode>): Uint8Array {
  const bytes = content(buf, node);
  if (bytes.length < 1 || bytes[0] !== 0) throw new CertificateParseError('signature BIT STRING must have no unused bits');
  return bytes.subarray(1);
}

function smallInteger(buf: Uint8Array, node: ReturnType<typeof readNode>): number {
  const bytes = content(buf, node);
  if (bytes.length === 0 || bytes.length > 4 || (bytes[0]! & 0x80) !== 0) throw new CertificateParseError('integer out of range');
  let v = 0;
  for (const b of bytes) v = v * 256 + b;
  return v;
}

function parseBasicConstraints(value: Uint8Array): { ca: boolean; pathLength: number | null } {
  const seq = expectTag(readNode(value, 0, value.length), TAG.SEQUENCE, 'BasicConstraints');
  if (seq.end !== value.length) throw new CertificateParseError('trailing bytes in BasicConstraints');
  let ca = false;
  let pathLength: number | null = null;
  for (const node of children(value, seq)) {
    if (node.tag === TAG.BOOLEAN) ca = decodeBoolean(value, node);
    else if (node.tag === TAG.INTEGER) pathLength = smallInteger(value, node);
    else throw new CertificateParseError('unexpected element in BasicConstraints');
  }
  return { ca, pathLength };
}

function parseKeyUsage(value: Uint8Array): { digitalSignature: boolean; keyCertSign: boolean } {
  const node = expectTag(readNode(value, 0, value.length), TAG.BIT_STRING, 'KeyUsage');
  const bits = content(value, node);
  if (bits.length < 2) throw new CertificateParseError('empty KeyUsage');
  const first = bits[1]!;
  return { digitalSignature: (first & 0x80) !== 0, keyCertSign: (first & 0x04) !== 0 };
}

/** The subject CN, for messages only; never throws (the Name was not otherwise validated). */
function commonName(buf: Uint8Array, name: ReturnType<typeof readNode>): string | null {
  try {
    return findCommonName(buf, name);
  } catch {
    return null;
  }
}

function findCommonName(buf: Uint8Array, name: ReturnType<typeof readNode>): string | null {
  for (const rdn of children(buf, name)) {
    for (const atv of children(buf, rdn)) {
      const [type, value] = children(buf, atv);
      if (type && value && decodeOid(content(buf, type)) === OID_COMMON_NAME) {
        return utf8.decode(content(buf, value));
      }
    }
  }
  return null;
}

