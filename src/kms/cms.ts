import { createDecipheriv, KeyObject, privateDecrypt, constants, webcrypto } from 'node:crypto';
import { NitroEnclaveError } from '../errors.js';
import { Asn1Error, TAG, children, content, decodeOid, readNode, type Asn1Node } from '../internal/asn1.js';

const OID = {
  envelopedData: '1.2.840.113549.1.7.3',
  data: '1.2.840.113549.1.7.1',
  rsaesOaep: '1.2.840.113549.1.1.7',
  mgf1: '1.2.840.113549.1.1.8',
  sha256: '2.16.840.1.101.3.4.2.1',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
} as const;

/** One KeyTransRecipientInfo of an EnvelopedData. */
export interface KeyTransRecipient {
  readonly version: number;
  /** v2: the subjectKeyIdentifier; v0: issuer (DER) and serial number. */
  readonly recipientId:
    | { readonly type: 'subjectKeyIdentifier'; readonly keyIdentifier: Uint8Array }
    | { readonly type: 'issuerAndSerialNumber'; readonly issuer: Uint8Array; readonly serialNumber: Uint8Array };
  readonly keyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256';
  readonly encryptedKey: Uint8Array;
}

/** The parts of a CMS EnvelopedData, for diagnostics. Nothing here is secret. */
export interface ParsedEnvelopedData {
  readonly version: number;
  readonly recipients: readonly KeyTransRecipient[];
  readonly contentType: string;
  readonly contentEncryptionAlgorithm: 'AES_256_CBC';
  readonly iv: Uint8Array;
  readonly encryptedContent: Uint8Array;
}

function malformed(message: string): NitroEnclaveError {
  return new NitroEnclaveError('ERR_CMS_MALFORMED', `CMS EnvelopedData: ${message}`);
}

function unsupported(message: string): NitroEnclaveError {
  return new NitroEnclaveError('ERR_CMS_UNSUPPORTED_ALGORITHM', `CMS EnvelopedData: ${message}`);
}

const BER = { ber: true, maxDepth: 16 } as const;

class Walker {
  constructor(readonly buf: Uint8Array) {}
  kids(node: Asn1Node): Asn1Node[] {
    return children(this.buf, node, BER);
  }
  expect(node: Asn1Node | undefined, tag: number, what: string): Asn1Node {
    if (!node || node.tag !== tag) throw malformed(`${what} missing or of the wrong type`);
    return node;
  }
  oid(node: Asn1Node | undefined, what: string): string {
    return decodeOid(content(this.buf, this.expect(node, TAG.OID, what)));
  }
  int(node: Asn1Node | undefined, what: string): number {
    const bytes = content(this.buf, this.expect(node, TAG.INTEGER, what));
    if (bytes.length !== 1) throw malformed(`${what} out of range`);
    return bytes[0]!;
  }
  /** An OCTET STRING, primitive or (BER) constructed of primitive chunks. */
  octets(node: Asn1Node, what: string): Uint8Array {
    if (!node.constructed) return content(this.buf, node);
    const parts = this.kids(node).map((chunk) => {
      if (chunk.tag !== TAG.OCTET_STRING) throw malformed(`${what} chunk is not an OCTET STRING`);
      return content(this.buf, chunk);
    });
    return Buffer.concat(parts);
  }
}

/** Accepts AlgorithmIdentifier(sha256) with absent or NULL parameters. */
function isSha256(w: Walker, node: Asn1Node | undefined): boolean {
  if (!node || node.tag !== TAG.SEQUENCE) return false;
  const [oid, params, extra] = w.kids(node);
  if (extra || (params && params.tag !== TAG.NULL)) return false;
  return w.oid(oid, 'hash algorithm') === OID.sha256;
}

function parseOaep(w: Walker, alg: Asn1Node): void {
  const [oid, params] = w.kids(w.expect(alg, TAG.SEQUENCE, 'keyEncryptionAlgorithm'));
  const name = w.oid(oid, 'keyEncryptionAlgorithm');
  if (name !== OID.rsaesOaep) throw unsupported(`key encryption algorithm ${name} is not RSAES-OAEP`);
  // RSAES-OAEP-params with absent fields means SHA-1 / MGF1-SHA-1: not what KMS uses, so not accepted.
  if (!params || params.tag !== TAG.SEQUENCE) throw unsupported('RSAES-OAEP without parameters means SHA-1; only SHA-256 is supported');
  let hashOk = false;
  let mgfOk = false;
  for (const field of w.kids(params)) {
    if (field.tag === 0xa0) {
      hashOk = isSha256(w, w.kids(field)[0]);
    } else if (field.tag === 0xa1) {
      const [mgf] = w.kids(field);
      const [mgfOid, mgfHash] = w.kids(w.expect(mgf, TAG.SEQUENCE, 'maskGenAlgorithm'));
      mgfOk = w.oid(mgfOid, 'maskGenAlgorithm') === OID.mgf1 && isSha256(w, mgfHash);
    } else if (field.tag === 0xa2) {
      throw unsupported('RSAES-OAEP with a pSourceAlgorithm label is not supported');
    } else {
      throw malformed('unexpected field in RSAES-OAEP-params');
    }
  }
  if (!hashOk || !mgfOk) throw unsupported('RSAES-OAEP must use SHA-256 and MGF1 with SHA-256');
}

function parseRecipient(w: Walker, node: Asn1Node): KeyTransRecipient {
  if (node.tag !== TAG.SEQUENCE) throw unsupported('only KeyTransRecipientInfo recipients are supported');
  const [ver, rid, alg, key, extra] = w.kids(node);
  if (extra) throw malformed('KeyTransRecipientInfo has extra fields');
  const version = w.int(ver, 'KeyTransRecipientInfo version');
  let recipientId: KeyTransRecipient['recipientId'];
  if (version === 2) {
    if (!rid || rid.tag !== 0x80) throw malformed('v2 recipient must be identified by subjectKeyIdentifier [0]');
    recipientId = { type: 'subjectKeyIdentifier', keyIdentifier: new Uint8Array(content(w.buf, rid)) };
  } else if (version === 0) {
    const [issuer, serial] = w.kids(w.expect(rid, TAG.SEQUENCE, 'issuerAndSerialNumber'));
    const issuerNode = w.expect(issuer, TAG.SEQUENCE, 'issuer');
    recipientId = {
      type: 'issuerAndSerialNumber',
      issuer: new Uint8Array(w.buf.subarray(issuerNode.start, issuerNode.end)),
      serialNumber: new Uint8Array(content(w.buf, w.expect(serial, TAG.INTEGER, 'serialNumber'))),
    };
  } else {
    throw malformed(`KeyTransRecipientInfo version ${version} is not 0 or 2`);
  }
  parseOaep(w, alg!);
  if (!key || (key.tag !== TAG.OCTET_STRING && key.tag !== (TAG.OCTET_STRING | 0x20))) throw malformed('encryptedKey missing or of the wrong type');
  const encryptedKey = w.octets(key, 'encryptedKey');
  return { version, recipientId, keyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256', encryptedKey: new Uint8Array(encryptedKey) };
}

/**
 * Parses a CMS ContentInfo(EnvelopedData) in BER or DER — the shape of KMS's
 * `CiphertextForRecipient` — without decrypting anything. Trailing
 * end-of-contents octets after the ContentInfo are tolerated, as AWS's own
 * blobs carry them; anything else is `ERR_CMS_MALFORMED`.
 *
 * @example
 * ```ts
 * const env = parseEnvelopedData(ciphertextForRecipient);
 * console.log(env.recipients[0].keyEncryptionAlgorithm, env.iv.length); // 'RSAES_OAEP_SHA_256', 16
 * ```
 */
export function parseEnvelopedData(envelope: Uint8Array): ParsedEnvelopedData {
  if (!(envelope instanceof Uint8Array)) throw new TypeError('envelope must be a Uint8Array');
  try {
    return parse(envelope);
  } catch (err) {
    if (err instanceof Asn1Error) throw malformed(err.message);
    throw err;
  }
}

function parse(buf: Uint8Array): ParsedEnvelopedData {
  const w = new Walker(buf);
  const root = w.expect(readNode(buf, 0, buf.length, BER), TAG.SEQUENCE, 'ContentInfo');
  for (let i = root.end; i < buf.length; i++) if (buf[i] !== 0) throw malformed('trailing bytes after ContentInfo');
  const [typeNode, wrapped, extraInfo] = w.kids(root);
  if (extraInfo) throw malformed('ContentInfo has extra fields');
  const type = w.oid(typeNode, 'contentType');
  if (type !== OID.envelopedData) throw malformed(`content type ${type} is not envelopedData`);
  const [env, extraWrapped] = w.kids(w.expect(wrapped, 0xa0, 'content [0]'));
  if (extraWrapped) throw malformed('content [0] holds more than one element');
  const fields = w.kids(w.expect(env, TAG.SEQUENCE, 'EnvelopedData'));
  let i = 0;
  const version = w.int(fields[i++], 'EnvelopedData version');
  if (![0, 2, 3, 4].includes(version)) throw malformed(`EnvelopedData version ${version} is not supported`);
  if (fields[i]?.tag === 0xa0) i++; // originatorInfo: certificates we do not need
  const recipientSet = w.expect(fields[i++], TAG.SET, 'recipientInfos');
  const recipients = w.kids(recipientSet).map((r) => parseRecipient(w, r));
  if (recipients.length === 0) throw malformed('no recipients');
  const eci = w.kids(w.expect(fields[i++], TAG.SEQUENCE, 'EncryptedContentInfo'));
  if (fields[i] && fields[i]!.tag !== 0xa1) throw malformed('unexpected field after EncryptedContentInfo');
  const contentType = w.oid(eci[0], 'EncryptedContentInfo contentType');
  const [algOid, ivNode, algExtra] = w.kids(w.expect(eci[1], TAG.SEQUENCE, 'contentEncryptionAlgorithm'));
  const alg = w.oid(algOid, 'contentEncryptionAlgorithm');
  if (alg !== OID.aes256Cbc) throw unsupported(`content encryption algorithm ${alg} is not aes-256-cbc`);
  if (!ivNode || ivNode.tag !== TAG.OCTET_STRING || algExtra) throw malformed('aes-256-cbc needs an IV (OCTET STRING) parameter');
  const iv = content(buf, ivNode);
  if (iv.length !== 16) throw malformed(`aes-256-cbc IV must be 16 bytes, got ${iv.length}`);
  const body = eci[2];
  if (!body) throw malformed('encryptedContent is absent (detached content is not supported)');
  let encryptedContent: Uint8Array;
  if (body.tag === 0x80) encryptedContent = content(buf, body);
  else if (body.tag === 0xa0) encryptedContent = w.octets(body, 'encryptedContent');
  else throw malformed('encryptedContent must be [0]');
  if (eci[3]) throw malformed('EncryptedContentInfo has extra fields');
  if (encryptedContent.length === 0 || encryptedContent.length % 16 !== 0) throw malformed('encryptedContent is not a whole number of AES blocks');
  return {
    version,
    recipients,
    contentType,
    contentEncryptionAlgorithm: 'AES_256_CBC',
    iv: new Uint8Array(iv),
    encryptedContent: new Uint8Array(encryptedContent),
  };
}

const DECRYPT_FAILED = 'CMS EnvelopedData could not be decrypted with this private key';

function toKeyObject(privateKey: KeyObject | webcrypto.CryptoKey): KeyObject {
  if (privateKey instanceof KeyObject) return privateKey;
  if (typeof privateKey === 'object' && privateKey !== null && 'algorithm' in privateKey) return KeyObject.from(privateKey);
  throw new TypeError('privateKey must be a KeyObject or a CryptoKey');
}

/**
 * Opens KMS's `CiphertextForRecipient` (CMS EnvelopedData: RSAES-OAEP-SHA-256
 * key transport, AES-256-CBC content) with the recipient's RSA private key.
 * Every unwrap or padding failure gives the same `ERR_CMS_DECRYPT_FAILED`
 * error, so nothing learns which byte was wrong. The intermediate content
 * key is zeroed before returning; the caller owns (and should zero) the result.
 *
 * @example
 * ```ts
 * const plaintext = await decryptCiphertextForRecipient(response.CiphertextForRecipient, keyPair.privateKey);
 * try { use(plaintext); } finally { plaintext.fill(0); }
 * ```
 */
export async function decryptCiphertextForRecipient(envelope: Uint8Array, privateKey: KeyObject | webcrypto.CryptoKey): Promise<Uint8Array> {
  const key = toKeyObject(privateKey);
  if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa') throw new TypeError('privateKey must be an RSA private key');
  const parsed = parseEnvelopedData(envelope);
  for (const recipient of parsed.recipients) {
    let cek: Buffer | undefined;
    try {
      cek = privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, recipient.encryptedKey);
    } catch {
      continue;
    }
    try {
      if (cek.length !== 32) break;
      const decipher = createDecipheriv('aes-256-cbc', cek, parsed.iv);
      const head = decipher.update(parsed.encryptedContent);
      const tail = decipher.final();
      const out = new Uint8Array(head.length + tail.length);
      out.set(head, 0);
      out.set(tail, head.length);
      head.fill(0);
      tail.fill(0);
      return out;
    } catch {
      break;
    } finally {
      cek.fill(0);
    }
  }
  throw new NitroEnclaveError('ERR_CMS_DECRYPT_FAILED', DECRYPT_FAILED);
}
