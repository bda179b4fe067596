import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { NitroEnclaveError } from '../../errors.js';
import { verifyAttestationDocument, type VerifiedAttestation } from '../../attestation/index.node.js'; // Node-only module: the node:crypto verifier
import { authorizeIam } from './access.js';
import { buildRecipientEnvelope } from './envelope.js';
import { ALIAS_HANDLERS } from './aliases.js';
import { GRANT_HANDLERS, grantTokens } from './grants.js';
import { IMPORT_HANDLERS } from './import.js';
import { MULTI_REGION_HANDLERS } from './multi-region.js';
import { KmsError } from './errors.js';
import {
  authorize,
  b64,
  checkPolicy,
  context,
  defaultPolicy,
  dryRun,
  findKey,
  metadata,
  notPendingDeletion,
  requireString,
  usable,
  type CallContext,
  type Handler,
  type Json,
  type OperationConfig,
} from './shared.js';
import type { KeyRecord } from './state.js';

export { KmsError } from './errors.js';
export type { CallContext, OperationConfig } from './shared.js';

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
    attestation = await verifyAttestationDocument(document, { trustAnchors: cfg.trustAnchors, currentDate: ctx.now, maxAgeMs: cfg.attestationMaxAgeMs, clockToleranceMs: 60_000, allowDebug: true });
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


/** EnableKey / DisableKey: the same checks, only the new state differs. */
function setKeyState(state: 'Enabled' | 'Disabled'): Handler {
  return async (cfg, body, ctx) => {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    authorize(cfg, key, state === 'Enabled' ? 'kms:EnableKey' : 'kms:DisableKey', ctx, {});
    notPendingDeletion(key);
    if (key.keyState === 'PendingImport') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending import.`);
    key.keyState = state;
    cfg.state.save();
    ctx.audit.resources.push(key.arn);
    return {};
  };
}

/** The operations the simulator serves, by `X-Amz-Target` name. */
export const OPERATIONS: Record<string, Handler> = {
  ...GRANT_HANDLERS,
  ...MULTI_REGION_HANDLERS,
  ...IMPORT_HANDLERS,
  ...ALIAS_HANDLERS,
  async CreateKey(cfg, body, ctx) {
    const spec = (body.KeySpec ?? 'SYMMETRIC_DEFAULT') as KeyRecord['spec'];
    const usage = body.KeyUsage ?? (spec === 'SYMMETRIC_DEFAULT' ? 'ENCRYPT_DECRYPT' : undefined);
    const supported = (spec === 'SYMMETRIC_DEFAULT' && usage === 'ENCRYPT_DECRYPT') || (['ECC_NIST_P256', 'ECC_NIST_P384', 'ECC_NIST_P521'].includes(spec) && usage === 'KEY_AGREEMENT');
    if (!supported) throw new KmsError('ValidationException', 'The simulator creates SYMMETRIC_DEFAULT/ENCRYPT_DECRYPT and ECC_NIST_*/KEY_AGREEMENT keys only');
    const origin = body.Origin ?? 'AWS_KMS';
    if (!['AWS_KMS', 'EXTERNAL', 'AWS_CLOUDHSM', 'EXTERNAL_KEY_STORE'].includes(origin as string)) {
      throw new KmsError('ValidationException', `1 validation error detected: Value '${String(origin)}' at 'origin' failed to satisfy constraint: Member must satisfy enum value set: [AWS_CLOUDHSM, EXTERNAL, AWS_KMS, EXTERNAL_KEY_STORE]`);
    }
    if (origin === 'AWS_CLOUDHSM' || origin === 'EXTERNAL_KEY_STORE') throw new KmsError('UnsupportedOperationException', `The simulator has no custom key stores (Origin ${origin as string})`);
    // KMS imports material only into symmetric encryption keys here (asymmetric/HMAC import is not simulated).
    if (origin === 'EXTERNAL' && spec !== 'SYMMETRIC_DEFAULT') throw new KmsError('UnsupportedOperationException', `The simulator imports key material only into SYMMETRIC_DEFAULT keys`);
    if (body.MultiRegion !== undefined && typeof body.MultiRegion !== 'boolean') throw new KmsError('SerializationException', 'MultiRegion must be a boolean');
    authorizeIam('kms:CreateKey', ctx.caller, '*', { 'kms:MultiRegion': String(body.MultiRegion === true), 'kms:KeyOrigin': origin as string });
    const account = ctx.caller.accountId;
    const policy = body.Policy === undefined ? defaultPolicy(account) : checkPolicy(cfg, body.Policy, { arn: cfg.state.keyArn(ctx.region, account, '*'), accountId: account }, ctx, body.BypassPolicyLockoutSafetyCheck);
    const key = cfg.state.createKey({
      region: ctx.region,
      accountId: account,
      description: typeof body.Description === 'string' ? body.Description : '',
      policy,
      now: ctx.now,
      spec,
      origin: origin as KeyRecord['origin'],
      multiRegion: body.MultiRegion === true,
    });
    ctx.audit.resources.push(key.arn);
    return { KeyMetadata: metadata(cfg, key) };
  },

  async CreateAlias(cfg, body, ctx) {
    const name = requireString(body, 'AliasName');
    if (!/^alias\/[a-zA-Z0-9/_-]+$/.test(name) || name.startsWith('alias/aws/')) throw new KmsError('ValidationException', `Alias ${name} is not a valid alias name`);
    const key = findKey(cfg, requireString(body, 'TargetKeyId'), ctx, 'key', false);
    // KMS authorizes CreateAlias on the alias (IAM) and on the key (key policy).
    authorizeIam('kms:CreateAlias', ctx.caller, cfg.state.aliasArn(ctx.region, ctx.caller.accountId, name));
    authorize(cfg, key, 'kms:CreateAlias', ctx, {});
    notPendingDeletion(key);
    const arn = cfg.state.aliasArn(ctx.region, key.accountId, name);
    if (cfg.state.aliases.has(arn)) throw new KmsError('AlreadyExistsException', `An alias with the name ${arn} already exists`);
    cfg.state.aliases.set(arn, key.keyId);
    cfg.state.save();
    ctx.audit.resources.push(key.arn);
    return {};
  },

  async ListAliases(cfg, body, ctx) {
    authorizeIam('kms:ListAliases', ctx.caller);
    const filter = typeof body.KeyId === 'string' ? findKey(cfg, body.KeyId, ctx, 'key', false).keyId : null;
    const aliases = cfg.state
      .aliasesOf(ctx.region, ctx.caller.accountId)
      .filter(([, target]) => filter === null || target === filter)
      .map(([name, target]) => ({ AliasName: name, AliasArn: cfg.state.aliasArn(ctx.region, ctx.caller.accountId, name), TargetKeyId: target }));
    return { Aliases: aliases, Truncated: false };
  },

  async ListKeys(cfg, _body, ctx) {
    authorizeIam('kms:ListKeys', ctx.caller);
    cfg.state.expire(ctx.now);
    const keys = [...cfg.state.keys.values()].filter((k) => k.accountId === ctx.caller.accountId && k.region === ctx.region).map((k) => ({ KeyId: k.keyId, KeyArn: k.arn }));
    return { Keys: keys, Truncated: false };
  },

  async DescribeKey(cfg, body, ctx) {
    grantTokens(cfg, body, ctx);
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    authorize(cfg, key, 'kms:DescribeKey', ctx, {});
    ctx.audit.resources.push(key.arn);
    return { KeyMetadata: metadata(cfg, key) };
  },

  EnableKey: setKeyState('Enabled'),
  DisableKey: setKeyState('Disabled'),

  async ScheduleKeyDeletion(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    const days = body.PendingWindowInDays ?? 30;
    if (typeof days !== 'number' || !Number.isInteger(days) || days < 7 || days > 30) {
      throw new KmsError('ValidationException', `1 validation error detected: Value '${String(days)}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value less than or equal to 30 and greater than or equal to 7`);
    }
    authorize(cfg, key, 'kms:ScheduleKeyDeletion', ctx, {});
    notPendingDeletion(key);
    ctx.audit.resources.push(key.arn);
    // A multi-Region primary with replicas waits for them: its own waiting period starts when the last one is deleted.
    if (key.multiRegion && key.primary && cfg.state.related(key).length > 1) {
      key.keyState = 'PendingReplicaDeletion';
      key.pendingWindowInDays = days;
      cfg.state.save();
      return { KeyId: key.arn, KeyState: 'PendingReplicaDeletion', PendingWindowInDays: days };
    }
    key.keyState = 'PendingDeletion';
    key.deletionDate = Math.floor(ctx.now.getTime() / 1000) + days * 86_400;
    cfg.state.save();
    return { KeyId: key.arn, DeletionDate: key.deletionDate, KeyState: 'PendingDeletion', PendingWindowInDays: days };
  },

  async CancelKeyDeletion(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    authorize(cfg, key, 'kms:CancelKeyDeletion', ctx, {});
    if (key.keyState !== 'PendingDeletion' && key.keyState !== 'PendingReplicaDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is not pending deletion.`);
    // KMS leaves a cancelled key disabled (an EXTERNAL key without material stays PendingImport).
    key.keyState = key.origin === 'EXTERNAL' && key.material.length === 0 ? 'PendingImport' : 'Disabled';
    delete key.deletionDate;
    delete key.pendingWindowInDays;
    cfg.state.save();
    ctx.audit.resources.push(key.arn);
    return { KeyId: key.arn };
  },

  async PutKeyPolicy(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    policyName(body);
    authorize(cfg, key, 'kms:PutKeyPolicy', ctx, {});
    key.policy = checkPolicy(cfg, body.Policy, key, ctx, body.BypassPolicyLockoutSafetyCheck);
    cfg.state.save();
    ctx.audit.resources.push(key.arn);
    return {};
  },

  async GetKeyPolicy(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    policyName(body);
    authorize(cfg, key, 'kms:GetKeyPolicy', ctx, {});
    ctx.audit.resources.push(key.arn);
    return { Policy: key.policy, PolicyName: 'default' };
  },

  async ListKeyPolicies(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    authorize(cfg, key, 'kms:ListKeyPolicies', ctx, {});
    ctx.audit.resources.push(key.arn);
    return { PolicyNames: ['default'], Truncated: false };
  },

  async Encrypt(cfg, body, ctx) {
    grantTokens(cfg, body, ctx);
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    const ec = context(body);
    const plaintext = b64(body.Plaintext, 'plaintext');
    if (plaintext.length < 1 || plaintext.length > 4096) throw new KmsError('ValidationException', 'Plaintext must be 1 to 4096 bytes');
    ctx.audit.resources.push(key.arn);
    authorize(cfg, key, 'kms:Encrypt', ctx, conditionKeys(null, ec), { context: ec });
    usable(key);
    dryRun(body);
    return { CiphertextBlob: cfg.state.encrypt(key, plaintext, ec).toString('base64'), KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
  },

  async Decrypt(cfg, body, ctx) {
    grantTokens(cfg, body, ctx);
    const blob = b64(body.CiphertextBlob, 'ciphertextBlob');
    const ec = context(body);
    ctx.audit.requestParameters.encryptionContext = ec;
    const recipient = await recipientOf(cfg, body, ctx);
    const key = blobKey(cfg, blob, body.KeyId, ctx);
    ctx.audit.resources.push(key.arn);
    authorize(cfg, key, 'kms:Decrypt', ctx, conditionKeys(recipient, ec), { context: ec });
    usable(key);
    const plaintext = cfg.state.decrypt(key, blob, ec);
    if (!plaintext) throw new KmsError('InvalidCiphertextException', '');
    if (body.DryRun === true) plaintext.fill(0);
    dryRun(body);
    return { KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT', ...forRecipient(recipient, plaintext, 'Plaintext') };
  },

  async ReEncrypt(cfg, body, ctx) {
    grantTokens(cfg, body, ctx);
    const blob = b64(body.CiphertextBlob, 'ciphertextBlob');
    const sourceContext = context(body, 'SourceEncryptionContext');
    const destinationContext = context(body, 'DestinationEncryptionContext');
    const destination = findKey(cfg, requireString(body, 'DestinationKeyId'), ctx, 'any', true);
    const source = blobKey(cfg, blob, body.SourceKeyId, ctx);
    ctx.audit.resources.push(source.arn, destination.arn);
    // KMS authorizes ReEncrypt as two actions: ReEncryptFrom on the source key, ReEncryptTo on the destination.
    authorize(cfg, source, 'kms:ReEncryptFrom', ctx, conditionKeys(null, sourceContext), { context: sourceContext });
    authorize(cfg, destination, 'kms:ReEncryptTo', ctx, conditionKeys(null, destinationContext), { context: destinationContext });
    usable(source);
    usable(destination);
    const plaintext = cfg.state.decrypt(source, blob, sourceContext);
    if (!plaintext) throw new KmsError('InvalidCiphertextException', '');
    try {
      dryRun(body);
      return {
        CiphertextBlob: cfg.state.encrypt(destination, plaintext, destinationContext).toString('base64'),
        SourceKeyId: source.arn,
        KeyId: destination.arn,
        SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      };
    } finally {
      plaintext.fill(0);
    }
  },

  async GenerateDataKey(cfg, body, ctx) {
    grantTokens(cfg, body, ctx);
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    const ec = context(body);
    const size = dataKeyBytes(body);
    const recipient = await recipientOf(cfg, body, ctx);
    ctx.audit.resources.push(key.arn);
    authorize(cfg, key, 'kms:GenerateDataKey', ctx, conditionKeys(recipient, ec), { context: ec });
    usable(key);
    dryRun(body);
    const plaintext = randomBytes(size);
    const blob = cfg.state.encrypt(key, plaintext, ec);
    return { KeyId: key.arn, CiphertextBlob: blob.toString('base64'), ...forRecipient(recipient, plaintext, 'Plaintext') };
  },

  async GenerateDataKeyWithoutPlaintext(cfg, body, ctx) {
    grantTokens(cfg, body, ctx);
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    const ec = context(body);
    const size = dataKeyBytes(body);
    ctx.audit.resources.push(key.arn);
    authorize(cfg, key, 'kms:GenerateDataKeyWithoutPlaintext', ctx, conditionKeys(null, ec), { context: ec });
    usable(key);
    dryRun(body);
    const plaintext = randomBytes(size);
    const blob = cfg.state.encrypt(key, plaintext, ec);
    plaintext.fill(0);
    return { KeyId: key.arn, CiphertextBlob: blob.toString('base64') };
  },

  GenerateDataKeyPair: dataKeyPair(true),
  GenerateDataKeyPairWithoutPlaintext: dataKeyPair(false),

  async GetPublicKey(cfg, body, ctx) {
    grantTokens(cfg, body, ctx);
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    authorize(cfg, key, 'kms:GetPublicKey', ctx, {});
    usable(key, 'KEY_AGREEMENT');
    const publicKey = createPublicKey(createPrivateKey({ key: key.material, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
    return { KeyId: key.arn, PublicKey: publicKey.toString('base64'), KeySpec: key.spec, KeyUsage: key.usage, KeyAgreementAlgorithms: ['ECDH'] };
  },

  async DeriveSharedSecret(cfg, body, ctx) {
    grantTokens(cfg, body, ctx);
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    if (body.KeyAgreementAlgorithm !== 'ECDH') throw new KmsError('ValidationException', 'KeyAgreementAlgorithm must be ECDH');
    const recipient = await recipientOf(cfg, body, ctx);
    ctx.audit.resources.push(key.arn);
    authorize(cfg, key, 'kms:DeriveSharedSecret', ctx, conditionKeys(recipient, undefined));
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
    dryRun(body);
    const secret = diffieHellman({ privateKey, publicKey: peer });
    return { KeyId: key.arn, KeyAgreementAlgorithm: 'ECDH', KeyOrigin: 'AWS_KMS', ...forRecipient(recipient, secret, 'SharedSecret') };
  },

  async GenerateRandom(cfg, body, ctx) {
    const n = body.NumberOfBytes;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1024) throw new KmsError('ValidationException', 'NumberOfBytes must be between 1 and 1024');
    const recipient = await recipientOf(cfg, body, ctx);
    authorizeIam('kms:GenerateRandom', ctx.caller, '*', conditionKeys(recipient, undefined));
    return forRecipient(recipient, randomBytes(n), 'Plaintext');
  },
};

/** GenerateDataKeyPair (the private key in clear, or for a Recipient) and GenerateDataKeyPairWithoutPlaintext (only its blob). */
function dataKeyPair(withPlaintext: boolean): Handler {
  const action = withPlaintext ? 'kms:GenerateDataKeyPair' : 'kms:GenerateDataKeyPairWithoutPlaintext';
  return async (cfg, body, ctx) => {
    grantTokens(cfg, body, ctx);
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    const ec = context(body);
    const spec = requireString(body, 'KeyPairSpec');
    const recipient = withPlaintext ? await recipientOf(cfg, body, ctx) : null;
    ctx.audit.resources.push(key.arn);
    authorize(cfg, key, action, ctx, conditionKeys(recipient, ec), { context: ec });
    usable(key);
    keyPairCurve(spec);
    dryRun(body);
    const pair = keyPair(spec);
    const pkcs8 = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
    const blob = cfg.state.encrypt(key, pkcs8, ec);
    const common = { KeyId: key.arn, KeyPairSpec: spec, PublicKey: pair.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'), PrivateKeyCiphertextBlob: blob.toString('base64') };
    if (withPlaintext) return { ...common, ...forRecipient(recipient, pkcs8, 'PrivateKeyPlaintext') };
    pkcs8.fill(0);
    return common;
  };
}

/** `PolicyName`: KMS keys have one policy, named `default`. */
function policyName(body: Json): void {
  const name = body.PolicyName ?? 'default';
  if (name !== 'default') throw new KmsError('ValidationException', `1 validation error detected: Value '${String(name)}' at 'policyName' failed to satisfy constraint: Member must satisfy regular expression pattern: default`);
}

/** The key a ciphertext blob belongs to (any account of the region: the blob names it), checked against an optional `KeyId`. */
function blobKey(cfg: OperationConfig, blob: Buffer, keyIdParam: unknown, ctx: CallContext): KeyRecord {
  cfg.state.expire(ctx.now);
  const owner = cfg.state.blobKeyId(blob);
  // The blob names a key id; the key of that id in the request's region decrypts it (any account: a key id is unique,
  // except that the replicas of a multi-Region key share theirs, one per region, and share its material).
  const key = owner ? [...cfg.state.keys.values()].find((k) => k.keyId === owner && k.region === ctx.region) : undefined;
  if (!key) throw new KmsError('InvalidCiphertextException', '');
  if (keyIdParam !== undefined) {
    if (typeof keyIdParam !== 'string') throw new KmsError('SerializationException', 'KeyId must be a string');
    if (findKey(cfg, keyIdParam, ctx, 'any', true).keyId !== key.keyId) {
      throw new KmsError('IncorrectKeyException', 'The key ID in the request does not identify a CMK that can perform this operation.');
    }
  }
  return key;
}

const CURVES: Record<string, string> = { ECC_NIST_P256: 'P-256', ECC_NIST_P384: 'P-384', ECC_NIST_P521: 'P-521', ECC_SECG_P256K1: 'secp256k1' };

/** Validates a KeyPairSpec: an RSA size, or the curve name. */
function keyPairCurve(spec: string): string | null {
  if (/^RSA_(2048|3072|4096)$/.test(spec)) return null;
  const curve = CURVES[spec];
  if (!curve) throw new KmsError('ValidationException', `KeyPairSpec ${spec} is not supported`);
  return curve;
}

function keyPair(spec: string): { privateKey: KeyObject; publicKey: KeyObject } {
  const curve = keyPairCurve(spec);
  if (curve === null) return generateKeyPairSync('rsa', { modulusLength: Number(spec.slice(4)) });
  return generateKeyPairSync('ec', { namedCurve: curve });
}
