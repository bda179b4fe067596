import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { bitString, boolean, explicit, flagBits, integer, octetString, oid, printableString, sequence, set, time, tlv, utf8String } from './der.js';

/** Relative distinguished name attributes, in order. */
export type NameAttributes = ReadonlyArray<readonly ['C' | 'ST' | 'L' | 'O' | 'OU' | 'CN', string]>;

const NAME_OIDS = { C: '2.5.4.6', ST: '2.5.4.8', L: '2.5.4.7', O: '2.5.4.10', OU: '2.5.4.11', CN: '2.5.4.3' } as const;
const ECDSA_SHA384 = '1.2.840.10045.4.3.3';

/** X.509 keyUsage bits, for {@link issueCertificate}. */
export const KEY_USAGE = { digitalSignature: 0x80, nonRepudiation: 0x40, keyCertSign: 0x04, cRLSign: 0x02 } as const;

/** Options of {@link issueCertificate}: subject, issuer, validity, CA constraints and key usage. */
export interface IssueCertificateOptions {
  subject: NameAttributes;
  /** The issuer's subject; omit for a self-signed certificate. */
  issuer?: NameAttributes;
  /** The key that signs; omit for self-signed (then `subjectKey` must hold the private key). */
  issuerKey?: KeyObject;
  subjectPublicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** `undefined`: no basicConstraints. */
  ca?: { pathLength?: number } | false;
  keyUsage?: number;
  serial?: Uint8Array;
  /** Adds an authorityKeyIdentifier naming this key (as AWS's non-root certificates carry). */
  issuerPublicKey?: KeyObject;
  /** subjectAltName DNS names (TLS server certificates). */
  dnsNames?: readonly string[];
}

/** A key identifier: SHA-1 of the SubjectPublicKeyInfo (RFC 7093 allows any stable method). */
export function keyIdentifier(key: KeyObject): Uint8Array {
  return new Uint8Array(createHash('sha1').update(key.export({ format: 'der', type: 'spki' })).digest());
}

/**
 * Encodes a Name as AWS does (PrintableString for C, UTF8String otherwise).
 *
 * @example
 * ```ts
 * const name = encodeName([['C', 'US'], ['O', 'Amazon'], ['CN', 'aws.nitro-enclaves']]);
 * ```
 */
export function encodeName(attrs: NameAttributes): Uint8Array {
  return sequence(...attrs.map(([type, value]) => set(sequence(oid(NAME_OIDS[type]), type === 'C' ? printableString(value) : utf8String(value)))));
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));
}

/**
 * Issues an X.509 v3 certificate signed with ECDSA-SHA384, DER-encoded.
 *
 * @example
 * ```ts
 * const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
 * const der = issueCertificate({ subject: [['CN', 'test root']], subjectPublicKey: publicKey, notBefore, notAfter, ca: {}, keyUsage: KEY_USAGE.keyCertSign }, privateKey);
 * ```
 */
export function issueCertificate(o: IssueCertificateOptions, signingKey: KeyObject): Uint8Array {
  const alg = sequence(oid(ECDSA_SHA384));
  const exts: Uint8Array[] = [];
  if (o.ca !== undefined) {
    const body = o.ca === false ? [] : [boolean(true), ...(o.ca.pathLength !== undefined ? [integer(o.ca.pathLength)] : [])];
    exts.push(extension('2.5.29.19', true, sequence(...body)));
  }
  if (o.keyUsage !== undefined) exts.push(extension('2.5.29.15', true, flagBits(o.keyUsage)));
  if (o.ca) exts.push(extension('2.5.29.14', false, octetString(keyIdentifier(o.subjectPublicKey))));
  if (o.dnsNames?.length) exts.push(extension('2.5.29.17', false, sequence(...o.dnsNames.map((n) => tlv(0x82, new TextEncoder().encode(n))))));
  if (o.issuerPublicKey) exts.push(extension('2.5.29.35', false, sequence(tlv(0x80, keyIdentifier(o.issuerPublicKey)))));
  const spki = o.subjectPublicKey.export({ format: 'der', type: 'spki' });
  const tbs = sequence(
    explicit(0, integer(2)),
    integer(o.serial ?? randomBytes(16)),
    alg,
    encodeName(o.issuer ?? o.subject),
    sequence(time(o.notBefore), time(o.notAfter)),
    encodeName(o.subject),
    spki,
    ...(exts.length ? [explicit(3, sequence(...exts))] : []),
  );
  const signature = sign('sha384', tbs, signingKey);
  return sequence(tbs, alg, bitString(signature));
}

/** A certificate of the test PKI: its DER, subject and key pair. */
export interface TestCertificate {
  readonly der: Uint8Array;
  readonly subject: NameAttributes;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

function p384(): { privateKey: KeyObject; publicKey: KeyObject } {
  return generateKeyPairSync('ec', { namedCurve: 'P-384' });
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Options of {@link createTestPki}. */
export interface TestPkiOptions {
  /** The moment the PKI is made; CA validity windows are placed around it. Default: now. */
  currentDate?: Date;
  region?: string;
  /** Override the subject names (e.g. to imitate AWS's names in negative tests). */
  names?: Partial<Record<'root' | 'regional' | 'zonal' | 'instance', NameAttributes>>;
}

/** A CA hierarchy shaped like AWS's: root → regional → zonal → instance, each P-384. */
export interface TestPki {
  readonly root: TestCertificate;
  readonly regional: TestCertificate;
  readonly zonal: TestCertificate;
  readonly instance: TestCertificate;
  /** `[root, regional, zonal, instance]` DER, as a document's `cabundle`. */
  readonly cabundle: readonly Uint8Array[];
  /** Issues a fresh leaf (AWS's live about 3 hours) valid from `notBefore`. */
  issueLeaf(notBefore: Date, lifetimeMs?: number): TestCertificate;
}

/**
 * Builds a P-384 test PKI with AWS's shape and constraints: root (CA, no path
 * length), regional (pathlen 2), zonal (pathlen 1), instance (pathlen 0,
 * keyCertSign only), and short-lived leaves (CA:FALSE, digitalSignature).
 * Names say "test" so a test certificate can never be mistaken for AWS's.
 *
 * @example
 * ```ts
 * const pki = createTestPki({ currentDate: new Date('2026-01-01T00:00:00Z') });
 * const leaf = pki.issueLeaf(new Date('2026-01-01T00:00:00Z'));
 * ```
 */
export function createTestPki(options: TestPkiOptions = {}): TestPki {
  const now = options.currentDate ?? new Date();
  const region = options.region ?? 'us-east-1';
  const base = [['C', 'US'], ['O', 'nitro-enclave-sdk'], ['OU', 'TEST']] as const;
  const names = {
    root: options.names?.root ?? [...base, ['CN', 'test-root.nitro-enclaves']],
    regional: options.names?.regional ?? [...base, ['CN', `test-regional.${region}.test.nitro-enclaves`]],
    zonal: options.names?.zonal ?? [...base, ['CN', `test-zonal.${region}.test.nitro-enclaves`]],
    instance: options.names?.instance ?? [...base, ['CN', `i-00000000000000000.${region}.test.nitro-enclaves`]],
  };
  const caUsage = KEY_USAGE.digitalSignature | KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign;
  const make = (subject: NameAttributes, issuer: TestCertificate | null, pathLength: number | undefined, usage: number, from: number, to: number): TestCertificate => {
    const keys = p384();
    const der = issueCertificate(
      {
        subject,
        issuer: issuer?.subject,
        issuerPublicKey: issuer?.publicKey,
        subjectPublicKey: keys.publicKey,
        notBefore: new Date(now.getTime() + from),
        notAfter: new Date(now.getTime() + to),
        ca: pathLength === undefined ? {} : { pathLength },
        keyUsage: usage,
      },
      issuer?.privateKey ?? keys.privateKey,
    );
    return { der, subject, ...keys };
  };
  const root = make(names.root, null, undefined, caUsage, -365 * DAY, 30 * 365 * DAY);
  const regional = make(names.regional, root, 2, caUsage, -10 * DAY, 20 * DAY);
  const zonal = make(names.zonal, regional, 1, caUsage, -2 * DAY, 5 * DAY);
  const instance = make(names.instance, zonal, 0, KEY_USAGE.keyCertSign, -1 * DAY, 2 * DAY);
  return {
    root,
    regional,
    zonal,
    instance,
    cabundle: [root.der, regional.der, zonal.der, instance.der],
    issueLeaf(notBefore, lifetimeMs = 3 * HOUR) {
      const keys = p384();
      const subject: NameAttributes = [...base, ['CN', `i-00000000000000000-enc${notBefore.getTime().toString(16)}.${region}.test`]];
      const der = issueCertificate(
        {
          subject,
          issuer: instance.subject,
          issuerPublicKey: instance.publicKey,
          subjectPublicKey: keys.publicKey,
          notBefore,
          notAfter: new Date(notBefore.getTime() + lifetimeMs),
          ca: false,
          keyUsage: KEY_USAGE.digitalSignature | KEY_USAGE.nonRepudiation,
        },
        instance.privateKey,
      );
      return { der, subject, ...keys };
    },
  };
}
