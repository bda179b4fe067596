import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { NitroEnclaveError } from '../../errors.js';
import { verifyAttestationDocument, type VerifiedAttestation } from '../../attestation/index.js';
import type { TrustAnchor } from '../../attestation/trust.js';
import { evaluatePolicy, parsePolicy, PolicySyntaxError, type PolicyDocument } from '../../kms/policy.js';
import { buildRecipientEnvelope } from './envelope.js';
import type { KeyRecord, KmsState } from './state.js';

/** A KMS error as the JSON 1.1 protocol carries it. */
export class KmsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export interface CallContext {
  principalArn: string;
  identityPolicies: readonly PolicyDocument[];
  now: Date;
  /** Filled by operations for the audit trail. */
  audit: { resources: string[]; recipient?: Record<string, string>; requestParameters: Record<string, unknown> };
}

export interface OperationConfig {
  state: KmsState;
  trustAnchors: readonly TrustAnchor[];
  attestationMaxAge: number;
}

type Json = Record<string, unknown>;

const b64 = (v: unknown, field: string): Buffer => {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw new KmsError('ValidationException', `1 validation error detected: Value at '${field}' failed to satisfy constraint: Member must be a base64 blob`);
  return Buffer.from(v, 'base64');
};

function requireString(body: Json, field: string): string {
  const v = body[field];
  if (typeof v !== 'string' || v.length === 0) {
    throw new KmsError('ValidationException', `1 validation error detected: Value null at '${field.charAt(0).toLowerCase()}${field.slice(1)}' failed to satisfy constraint: Member must not be null`);
  }
  return v;
}

function context(body: Json): Record<string, string> | undefined {
  const ec = body.EncryptionContext;
  if (ec === undefined) return undefined;
  if (typeof ec !== 'object' || ec === null || Object.values(ec).some((v) => typeof v !== 'string')) throw new KmsError('ValidationException', 'EncryptionContext must map strings to strings');
  return ec as Record<string, string>;
}

function findKey(cfg: OperationConfig, id: string): KeyRecord {
  const key = cfg.state.resolve(id);
  if (!key) {
    const arn = id.startsWith('arn:') ? id : id.startsWith('alias/') ? `arn:aws:kms:${cfg.state.region}:${cfg.state.accountId}:${id}` : `arn:aws:kms:${cfg.state.region}:${cfg.state.accountId}:key/${id}`;
    throw new KmsError('NotFoundException', `${id.startsWith('alias/') || id.includes(':alias/') ? 'Alias' : 'Key'} '${arn}' does not exist`);
  }
  return key;
}

function usable(key: KeyRecord, usage: KeyRecord['usage'] = 'ENCRYPT_DECRYPT'): void {
  if (!key.enabled) throw new KmsError('DisabledException', `${key.arn} is disabled.`);
  if (key.usage !== usage) throw new KmsError('InvalidKeyUsageException', `${key.arn} key usage is ${key.usage} which is not valid for this operation.`);
}

interface Recipient {
  attestation: VerifiedAttestation;
  publicKey: KeyObject;
}

/** Verifies a `Recipient` parameter: the attestation document, its freshness and its RSA public key. */
async function recipientOf(cfg: OperationConfig, body: Json, ctx: CallContext): Promise<Recipient | null> {
  const r = body.Recipient as Json | undefined;
  if (r === undefined) return null;
  if (typeof r !== 'object' || r === null) throw new KmsError('ValidationException', 'Recipient must be an object');
  if (r.KeyEncryptionAlgorithm !== 'RSAES_OAEP_SHA_256') {
    throw new KmsError('ValidationException', `1 validation error detected: Value '${String(r.KeyEncryptionAlgorithm)}' at 'recipient.keyEncryptionAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [RSAES_OAEP_SHA_256]`);
  }
  const document = b64(r.AttestationDocument, 'recipient.attestationDocument');
  let attestation: VerifiedAttestation;
  try {
    // Real KMS takes debug-mode documents (all-zero PCRs); only the key policy's conditions refuse them.
    attestation = await verifyAttestationDocument(document, { trustAnchors: cfg.trustAnchors, currentDate: ctx.now, maxAge: cfg.attestationMaxAge, clockTolerance: 60_000, allowDebug: true });
  } catch (err) {
    const reason = err instanceof NitroEnclaveError ? `${err.code}: ${err.message}` : 'unreadable';
    throw new KmsError('ValidationException', `Invalid attestation document (${reason})`);
  }
  if (!attestation.publicKey) throw new KmsError('ValidationException', 'The attestation document does not contain a public key');
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(attestation.publicKey), format: 'der', type: 'spki' });
  } catch {
    throw new KmsError('ValidationException', 'The public key in the attestation document is not a DER-encoded SubjectPublicKeyInfo');
  }
  const bits = publicKey.asymmetricKeyDetails?.modulusLength;
  if (publicKey.asymmetricKeyType !== 'rsa' || ![2048, 3072, 4096].includes(bits ?? 0)) {
    throw new KmsError('ValidationException', 'The public key in the attestation document must be an RSA key of 2048, 3072 or 4096 bits');
  }
  const recipient: Record<string, string> = {
    attestationDocumentModuleId: attestation.moduleId,
    attestationDocumentEnclaveImageDigest: attestation.pcrsHex[0] ?? '',
  };
  for (const [i, v] of Object.entries(attestation.pcrsHex)) if (i !== '0') recipient[`attestationDocumentEnclavePCR${i}`] = v;
  ctx.audit.recipient = recipient;
  return { attestation, publicKey };
}

function conditionKeys(recipient: Recipient | null, ec: Record<string, string> | undefined): Record<string, string | undefined> {
  const keys: Record<string, string | undefined> = {};
  if (recipient) {
    keys['kms:RecipientAttestation:ImageSha384'] = recipient.attestation.pcrsHex[0];
    for (const [i, v] of Object.entries(recipient.attestation.pcrsHex)) keys[`kms:RecipientAttestation:PCR${i}`] = v;
  }
  for (const [k, v] of Object.entries(ec ?? {})) keys[`kms:EncryptionContext:${k}`] = v;
  return keys;
}

function authorize(key: KeyRecord, action: string, ctx: CallContext, conditions: Record<string, string | undefined>): void {
  const decision = evaluatePolicy(parsePolicy(key.policy), { principalArn: ctx.principalArn, action, resource: key.arn, conditions }, ctx.identityPolicies);
  if (decision.effect === 'Allow') return;
  const why = decision.explicit ? 'with an explicit deny in a resource-based policy' : `because no resource-based policy allows the ${action} action`;
  throw new KmsError('AccessDeniedException', `User: ${ctx.principalArn} is not authorized to perform: ${action} on resource: ${key.arn} ${why}`);
}

function forRecipient(recipient: Recipient | null, plaintext: Buffer, field: string): Json {
  if (!recipient) return { [field]: plaintext.toString('base64') };
  const envelope = buildRecipientEnvelope(plaintext, recipient.publicKey);
  plaintext.fill(0);
  return { CiphertextForRecipient: Buffer.from(envelope).toString('base64') };
}

function dataKeyBytes(body: Json): number {
  if (body.KeySpec !== undefined && body.NumberOfBytes !== undefined) throw new KmsError('ValidationException', 'Please specify either number of bytes or key spec.');
  if (body.KeySpec === 'AES_256') return 32;
  if (body.KeySpec === 'AES_128') return 16;
  const n = body.NumberOfBytes;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 1024) return n;
  throw new KmsError('ValidationException', 'Please specify either number of bytes or key spec.');
}

function metadata(key: KeyRecord, accountId: string): Json {
  return {
    AWSAccountId: accountId,
    KeyId: key.keyId,
    Arn: key.arn,
    CreationDate: key.creationDate,
    Enabled: key.enabled,
    Description: key.description,
    KeyUsage: key.usage,
    KeyState: key.enabled ? 'Enabled' : 'Disabled',
    Origin: 'AWS_KMS',
    KeyManager: 'CUSTOMER',
    CustomerMasterKeySpec: key.spec,
    KeySpec: key.spec,
    ...(key.usage === 'ENCRYPT_DECRYPT' ? { EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'] } : { KeyAgreementAlgorithms: ['ECDH'] }),
    MultiRegion: false,
  };
}

function defaultPolicy(accountId: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Id: 'key-default-1',
    Statement: [{ Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountId}:root` }, Action: 'kms:*', Resource: '*' }],
  });
}

function checkPolicy(text: unknown): string {
  if (typeof text !== 'string') throw new KmsError('ValidationException', 'Policy must be a string');
  try {
    parsePolicy(text);
  } catch (err) {
    if (err instanceof PolicySyntaxError) throw new KmsError('MalformedPolicyDocumentException', err.message);
    throw err;
  }
  return text;
}

type Handler = (cfg: OperationConfig, body: Json, ctx: CallContext) => Promise<Json>;

/** The operations the simulator serves, by `X-Amz-Target` name. */
export const OPERATIONS: Record<string, Handler> = {
  async CreateKey(cfg, body, ctx) {
    const spec = (body.KeySpec ?? 'SYMMETRIC_DEFAULT') as KeyRecord['spec'];
    const usage = body.KeyUsage ?? (spec === 'SYMMETRIC_DEFAULT' ? 'ENCRYPT_DECRYPT' : undefined);
    const supported = (spec === 'SYMMETRIC_DEFAULT' && usage === 'ENCRYPT_DECRYPT') || (['ECC_NIST_P256', 'ECC_NIST_P384', 'ECC_NIST_P521'].includes(spec) && usage === 'KEY_AGREEMENT');
    if (!supported) throw new KmsError('ValidationException', 'The simulator creates SYMMETRIC_DEFAULT/ENCRYPT_DECRYPT and ECC_NIST_*/KEY_AGREEMENT keys only');
    const policy = body.Policy === undefined ? defaultPolicy(cfg.state.accountId) : checkPolicy(body.Policy);
    const key = cfg.state.createKey(typeof body.Description === 'string' ? body.Description : '', policy, ctx.now, spec);
    ctx.audit.resources.push(key.arn);
    return { KeyMetadata: metadata(key, cfg.state.accountId) };
  },

  async CreateAlias(cfg, body, ctx) {
    const name = requireString(body, 'AliasName');
    if (!/^alias\/[a-zA-Z0-9/_-]+$/.test(name) || name.startsWith('alias/aws/')) throw new KmsError('ValidationException', `Alias ${name} is not a valid alias name`);
    const key = findKey(cfg, requireString(body, 'TargetKeyId'));
    authorize(key, 'kms:CreateAlias', ctx, {});
    if (cfg.state.aliases.has(name)) throw new KmsError('AlreadyExistsException', `An alias with the name arn:aws:kms:${cfg.state.region}:${cfg.state.accountId}:${name} already exists`);
    cfg.state.aliases.set(name, key.keyId);
    cfg.state.save();
    ctx.audit.resources.push(key.arn);
    return {};
  },

  async ListAliases(cfg, body) {
    const filter = typeof body.KeyId === 'string' ? findKey(cfg, body.KeyId).keyId : null;
    const aliases = [...cfg.state.aliases]
      .filter(([, target]) => filter === null || target === filter)
      .map(([name, target]) => ({ AliasName: name, AliasArn: `arn:aws:kms:${cfg.state.region}:${cfg.state.accountId}:${name}`, TargetKeyId: target }));
    return { Aliases: aliases, Truncated: false };
  },

  async DescribeKey(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    authorize(key, 'kms:DescribeKey', ctx, {});
    ctx.audit.resources.push(key.arn);
    return { KeyMetadata: metadata(key, cfg.state.accountId) };
  },

  async EnableKey(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    authorize(key, 'kms:EnableKey', ctx, {});
    key.enabled = true;
    cfg.state.save();
    return {};
  },

  async DisableKey(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    authorize(key, 'kms:DisableKey', ctx, {});
    key.enabled = false;
    cfg.state.save();
    return {};
  },

  async PutKeyPolicy(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    if ((body.PolicyName ?? 'default') !== 'default') throw new KmsError('ValidationException', 'PolicyName must be "default"');
    const policy = checkPolicy(body.Policy);
    authorize(key, 'kms:PutKeyPolicy', ctx, {});
    key.policy = policy;
    cfg.state.save();
    ctx.audit.resources.push(key.arn);
    return {};
  },

  async GetKeyPolicy(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    authorize(key, 'kms:GetKeyPolicy', ctx, {});
    ctx.audit.resources.push(key.arn);
    return { Policy: key.policy, PolicyName: 'default' };
  },

  async Encrypt(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    const ec = context(body);
    const plaintext = b64(body.Plaintext, 'plaintext');
    if (plaintext.length < 1 || plaintext.length > 4096) throw new KmsError('ValidationException', 'Plaintext must be 1 to 4096 bytes');
    authorize(key, 'kms:Encrypt', ctx, conditionKeys(null, ec));
    usable(key);
    ctx.audit.resources.push(key.arn);
    return { CiphertextBlob: cfg.state.encrypt(key, plaintext, ec).toString('base64'), KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
  },

  async Decrypt(cfg, body, ctx) {
    const blob = b64(body.CiphertextBlob, 'ciphertextBlob');
    const ec = context(body);
    ctx.audit.requestParameters.encryptionContext = ec;
    const recipient = await recipientOf(cfg, body, ctx);
    const owner = cfg.state.blobKeyId(blob);
    const key = owner ? cfg.state.keys.get(owner) : undefined;
    if (!key) throw new KmsError('InvalidCiphertextException', '');
    if (typeof body.KeyId === 'string' && findKey(cfg, body.KeyId).keyId !== key.keyId) {
      throw new KmsError('IncorrectKeyException', 'The key ID in the request does not identify a CMK that can perform this operation.');
    }
    ctx.audit.resources.push(key.arn);
    authorize(key, 'kms:Decrypt', ctx, conditionKeys(recipient, ec));
    usable(key);
    const plaintext = cfg.state.decrypt(key, blob, ec);
    if (!plaintext) throw new KmsError('InvalidCiphertextException', '');
    return { KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT', ...forRecipient(recipient, plaintext, 'Plaintext') };
  },

  async GenerateDataKey(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    const ec = context(body);
    const size = dataKeyBytes(body);
    const recipient = await recipientOf(cfg, body, ctx);
    ctx.audit.resources.push(key.arn);
    authorize(key, 'kms:GenerateDataKey', ctx, conditionKeys(recipient, ec));
    usable(key);
    const plaintext = randomBytes(size);
    const blob = cfg.state.encrypt(key, plaintext, ec);
    return { KeyId: key.arn, CiphertextBlob: blob.toString('base64'), ...forRecipient(recipient, plaintext, 'Plaintext') };
  },

  async GenerateDataKeyWithoutPlaintext(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    const ec = context(body);
    const size = dataKeyBytes(body);
    ctx.audit.resources.push(key.arn);
    authorize(key, 'kms:GenerateDataKeyWithoutPlaintext', ctx, conditionKeys(null, ec));
    usable(key);
    const plaintext = randomBytes(size);
    const blob = cfg.state.encrypt(key, plaintext, ec);
    plaintext.fill(0);
    return { KeyId: key.arn, CiphertextBlob: blob.toString('base64') };
  },

  async GenerateDataKeyPair(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    const ec = context(body);
    const spec = requireString(body, 'KeyPairSpec');
    const recipient = await recipientOf(cfg, body, ctx);
    ctx.audit.resources.push(key.arn);
    authorize(key, 'kms:GenerateDataKeyPair', ctx, conditionKeys(recipient, ec));
    usable(key);
    const pair = keyPair(spec);
    const pkcs8 = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
    const blob = cfg.state.encrypt(key, pkcs8, ec);
    return {
      KeyId: key.arn,
      KeyPairSpec: spec,
      PublicKey: pair.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
      PrivateKeyCiphertextBlob: blob.toString('base64'),
      ...forRecipient(recipient, pkcs8, 'PrivateKeyPlaintext'),
    };
  },

  async GetPublicKey(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    authorize(key, 'kms:GetPublicKey', ctx, {});
    usable(key, 'KEY_AGREEMENT');
    const publicKey = createPublicKey(createPrivateKey({ key: key.material, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
    return { KeyId: key.arn, PublicKey: publicKey.toString('base64'), KeySpec: key.spec, KeyUsage: key.usage, KeyAgreementAlgorithms: ['ECDH'] };
  },

  async DeriveSharedSecret(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'));
    if (body.KeyAgreementAlgorithm !== 'ECDH') throw new KmsError('ValidationException', 'KeyAgreementAlgorithm must be ECDH');
    const recipient = await recipientOf(cfg, body, ctx);
    ctx.audit.resources.push(key.arn);
    authorize(key, 'kms:DeriveSharedSecret', ctx, conditionKeys(recipient, undefined));
    usable(key, 'KEY_AGREEMENT');
    let peer: KeyObject;
    try {
      peer = createPublicKey({ key: b64(body.PublicKey, 'publicKey'), format: 'der', type: 'spki' });
    } catch (err) {
      if (err instanceof KmsError) throw err;
      throw new KmsError('ValidationException', 'PublicKey must be a DER-encoded SubjectPublicKeyInfo');
    }
    const privateKey = createPrivateKey({ key: key.material, format: 'der', type: 'pkcs8' });
    if (peer.asymmetricKeyDetails?.namedCurve !== privateKey.asymmetricKeyDetails?.namedCurve) throw new KmsError('ValidationException', 'PublicKey is not on the curve of the KMS key');
    const secret = diffieHellman({ privateKey, publicKey: peer });
    return { KeyId: key.arn, KeyAgreementAlgorithm: 'ECDH', KeyOrigin: 'AWS_KMS', ...forRecipient(recipient, secret, 'SharedSecret') };
  },

  async GenerateRandom(cfg, body, ctx) {
    const n = body.NumberOfBytes;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1024) throw new KmsError('ValidationException', 'NumberOfBytes must be between 1 and 1024');
    const recipient = await recipientOf(cfg, body, ctx);
    return forRecipient(recipient, randomBytes(n), 'Plaintext');
  },
};

function keyPair(spec: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const rsa = /^RSA_(2048|3072|4096)$/.exec(spec);
  if (rsa) return generateKeyPairSync('rsa', { modulusLength: Number(rsa[1]) });
  const curves: Record<string, string> = { ECC_NIST_P256: 'P-256', ECC_NIST_P384: 'P-384', ECC_NIST_P521: 'P-521', ECC_SECG_P256K1: 'secp256k1' };
  const curve = curves[spec];
  if (!curve) throw new KmsError('ValidationException', `KeyPairSpec ${spec} is not supported`);
  return generateKeyPairSync('ec', { namedCurve: curve });
}
