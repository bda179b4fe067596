import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { NitroEnclaveError } from '../../errors.js';
import { verifyAttestationDocument, type VerifiedAttestation } from '../../attestation/index.node.js'; // Node-only module: the node:crypto verifier
import type { TrustAnchor } from '../../attestation/trust.js';
import { asArray, parsePolicy, PolicySyntaxError, type PolicyDocument } from '../../internal/iam-policy.js';
import { authorizeIam, keyDenial, resolveKey, type Caller, type KeyIdForms } from './access.js';
import { buildRecipientEnvelope } from './envelope.js';
import { KmsError } from './errors.js';
import type { KeyRecord, KmsState } from './state.js';

export { KmsError } from './errors.js';

export interface CallContext {
  caller: Caller;
  now: Date;
  /** Filled by operations for the audit trail. */
  audit: { resources: string[]; recipient?: Record<string, string>; requestParameters: Record<string, unknown> };
}

export interface OperationConfig {
  state: KmsState;
  trustAnchors: readonly TrustAnchor[];
  attestationMaxAgeMs: number;
  /** Whether an IAM principal ARN (user, role, assumed-role session, account root) exists, for key policy validation. */
  principalExists: (arn: string) => boolean;
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

function context(body: Json, field = 'EncryptionContext'): Record<string, string> | undefined {
  const ec = body[field];
  if (ec === undefined) return undefined;
  if (typeof ec !== 'object' || ec === null || Object.values(ec).some((v) => typeof v !== 'string')) throw new KmsError('ValidationException', `${field} must map strings to strings`);
  return ec as Record<string, string>;
}

/** Resolves a `KeyId` parameter with the forms this operation accepts (see {@link KeyIdForms}). */
function findKey(cfg: OperationConfig, id: string, ctx: CallContext, forms: KeyIdForms, crossAccount: boolean): KeyRecord {
  cfg.state.expire(ctx.now);
  return resolveKey(cfg.state, id, ctx.caller, { forms, crossAccount });
}

/** The key state table of KMS, for the operations the simulator serves. */
function usable(key: KeyRecord, usage: KeyRecord['usage'] = 'ENCRYPT_DECRYPT'): void {
  if (key.keyState === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
  if (key.keyState === 'Disabled') throw new KmsError('DisabledException', `${key.arn} is disabled.`);
  if (key.usage !== usage) throw new KmsError('InvalidKeyUsageException', `${key.arn} key usage is ${key.usage} which is not valid for this operation.`);
}

function notPendingDeletion(key: KeyRecord): void {
  if (key.keyState === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
}

/** `DryRun`: everything is checked, nothing is done; KMS answers with an error either way. */
function dryRun(body: Json): void {
  if (body.DryRun === undefined) return;
  if (typeof body.DryRun !== 'boolean') throw new KmsError('SerializationException', 'DryRun must be a boolean');
  if (body.DryRun) throw new KmsError('DryRunOperationException', 'The request would have succeeded, but the DryRun option is set.');
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

function authorize(key: KeyRecord, action: string, ctx: CallContext, conditions: Record<string, string | undefined>): void {
  const denial = keyDenial(parsePolicy(key.policy), key, action, ctx.caller, conditions);
  if (denial) throw denial;
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

function metadata(key: KeyRecord): Json {
  return {
    AWSAccountId: key.accountId,
    KeyId: key.keyId,
    Arn: key.arn,
    CreationDate: key.creationDate,
    Enabled: key.keyState === 'Enabled',
    Description: key.description,
    KeyUsage: key.usage,
    KeyState: key.keyState,
    ...(key.deletionDate !== undefined ? { DeletionDate: key.deletionDate } : {}),
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

const INVALID_PRINCIPALS = 'Policy contains a statement with one or more invalid principals.';

/**
 * Validates a key policy as KMS does before storing it: the syntax, a
 * principal in every statement that exists (an ARN of a known IAM entity,
 * a known account, or "*"), and, unless `bypass`, the lockout safety check:
 * the caller must still be allowed `kms:PutKeyPolicy` under the new policy.
 */
function checkPolicy(cfg: OperationConfig, text: unknown, key: Pick<KeyRecord, 'arn' | 'accountId'>, ctx: CallContext, bypass: unknown): string {
  if (typeof text !== 'string') throw new KmsError('ValidationException', "1 validation error detected: Value null at 'policy' failed to satisfy constraint: Member must not be null");
  if (bypass !== undefined && typeof bypass !== 'boolean') throw new KmsError('SerializationException', 'BypassPolicyLockoutSafetyCheck must be a boolean');
  let policy: PolicyDocument;
  try {
    policy = parsePolicy(text);
  } catch (err) {
    if (err instanceof PolicySyntaxError) throw new KmsError('MalformedPolicyDocumentException', err.message);
    throw err;
  }
  for (const s of policy.Statement) {
    if (s.Resource === undefined) throw new KmsError('MalformedPolicyDocumentException', 'Policy contains a statement without a Resource element.');
    const principal = s.Principal as unknown;
    if (principal === '*') continue;
    if (typeof principal !== 'object' || principal === null || Object.keys(principal).length === 0) throw new KmsError('MalformedPolicyDocumentException', INVALID_PRINCIPALS);
    for (const [kind, values] of Object.entries(principal)) {
      const list = asArray(values as string | string[]);
      const ok =
        list.length > 0 &&
        list.every((v) => typeof v === 'string' && (kind === 'AWS' ? v === '*' || cfg.principalExists(v) : kind === 'Service' && /^[a-z0-9.-]+\.amazonaws\.com$/.test(v)));
      if (!ok) throw new KmsError('MalformedPolicyDocumentException', INVALID_PRINCIPALS);
    }
  }
  if (bypass !== true && keyDenial(policy, key, 'kms:PutKeyPolicy', ctx.caller, {})) {
    throw new KmsError('MalformedPolicyDocumentException', 'The new key policy will not allow you to update the key policy in the future.');
  }
  return text;
}

type Handler = (cfg: OperationConfig, body: Json, ctx: CallContext) => Promise<Json>;

/** The operations the simulator serves, by `X-Amz-Target` name. */
/** EnableKey / DisableKey: the same checks, only the new state differs. */
function setKeyState(state: 'Enabled' | 'Disabled'): Handler {
  return async (cfg, body, ctx) => {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    authorize(key, state === 'Enabled' ? 'kms:EnableKey' : 'kms:DisableKey', ctx, {});
    notPendingDeletion(key);
    key.keyState = state;
    cfg.state.save();
    ctx.audit.resources.push(key.arn);
    return {};
  };
}

export const OPERATIONS: Record<string, Handler> = {
  async CreateKey(cfg, body, ctx) {
    const spec = (body.KeySpec ?? 'SYMMETRIC_DEFAULT') as KeyRecord['spec'];
    const usage = body.KeyUsage ?? (spec === 'SYMMETRIC_DEFAULT' ? 'ENCRYPT_DECRYPT' : undefined);
    const supported = (spec === 'SYMMETRIC_DEFAULT' && usage === 'ENCRYPT_DECRYPT') || (['ECC_NIST_P256', 'ECC_NIST_P384', 'ECC_NIST_P521'].includes(spec) && usage === 'KEY_AGREEMENT');
    if (!supported) throw new KmsError('ValidationException', 'The simulator creates SYMMETRIC_DEFAULT/ENCRYPT_DECRYPT and ECC_NIST_*/KEY_AGREEMENT keys only');
    authorizeIam('kms:CreateKey', ctx.caller);
    const account = ctx.caller.accountId;
    const policy = body.Policy === undefined ? defaultPolicy(account) : checkPolicy(cfg, body.Policy, { arn: cfg.state.keyArn(account, '*'), accountId: account }, ctx, body.BypassPolicyLockoutSafetyCheck);
    const key = cfg.state.createKey(account, typeof body.Description === 'string' ? body.Description : '', policy, ctx.now, spec);
    ctx.audit.resources.push(key.arn);
    return { KeyMetadata: metadata(key) };
  },

  async CreateAlias(cfg, body, ctx) {
    const name = requireString(body, 'AliasName');
    if (!/^alias\/[a-zA-Z0-9/_-]+$/.test(name) || name.startsWith('alias/aws/')) throw new KmsError('ValidationException', `Alias ${name} is not a valid alias name`);
    const key = findKey(cfg, requireString(body, 'TargetKeyId'), ctx, 'key', false);
    // KMS authorizes CreateAlias on the alias (IAM) and on the key (key policy).
    authorizeIam('kms:CreateAlias', ctx.caller, cfg.state.aliasArn(ctx.caller.accountId, name));
    authorize(key, 'kms:CreateAlias', ctx, {});
    notPendingDeletion(key);
    const arn = cfg.state.aliasArn(key.accountId, name);
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
      .aliasesOf(ctx.caller.accountId)
      .filter(([, target]) => filter === null || target === filter)
      .map(([name, target]) => ({ AliasName: name, AliasArn: cfg.state.aliasArn(ctx.caller.accountId, name), TargetKeyId: target }));
    return { Aliases: aliases, Truncated: false };
  },

  async ListKeys(cfg, _body, ctx) {
    authorizeIam('kms:ListKeys', ctx.caller);
    cfg.state.expire(ctx.now);
    const keys = [...cfg.state.keys.values()].filter((k) => k.accountId === ctx.caller.accountId).map((k) => ({ KeyId: k.keyId, KeyArn: k.arn }));
    return { Keys: keys, Truncated: false };
  },

  async DescribeKey(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    authorize(key, 'kms:DescribeKey', ctx, {});
    ctx.audit.resources.push(key.arn);
    return { KeyMetadata: metadata(key) };
  },

  EnableKey: setKeyState('Enabled'),
  DisableKey: setKeyState('Disabled'),

  async ScheduleKeyDeletion(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    const days = body.PendingWindowInDays ?? 30;
    if (typeof days !== 'number' || !Number.isInteger(days) || days < 7 || days > 30) {
      throw new KmsError('ValidationException', `1 validation error detected: Value '${String(days)}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value less than or equal to 30 and greater than or equal to 7`);
    }
    authorize(key, 'kms:ScheduleKeyDeletion', ctx, {});
    notPendingDeletion(key);
    key.keyState = 'PendingDeletion';
    key.deletionDate = Math.floor(ctx.now.getTime() / 1000) + days * 86_400;
    cfg.state.save();
    ctx.audit.resources.push(key.arn);
    return { KeyId: key.arn, DeletionDate: key.deletionDate, KeyState: 'PendingDeletion', PendingWindowInDays: days };
  },

  async CancelKeyDeletion(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    authorize(key, 'kms:CancelKeyDeletion', ctx, {});
    if (key.keyState !== 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is not pending deletion.`);
    key.keyState = 'Disabled'; // KMS leaves a cancelled key disabled
    delete key.deletionDate;
    cfg.state.save();
    ctx.audit.resources.push(key.arn);
    return { KeyId: key.arn };
  },

  async PutKeyPolicy(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    policyName(body);
    authorize(key, 'kms:PutKeyPolicy', ctx, {});
    key.policy = checkPolicy(cfg, body.Policy, key, ctx, body.BypassPolicyLockoutSafetyCheck);
    cfg.state.save();
    ctx.audit.resources.push(key.arn);
    return {};
  },

  async GetKeyPolicy(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    policyName(body);
    authorize(key, 'kms:GetKeyPolicy', ctx, {});
    ctx.audit.resources.push(key.arn);
    return { Policy: key.policy, PolicyName: 'default' };
  },

  async ListKeyPolicies(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    authorize(key, 'kms:ListKeyPolicies', ctx, {});
    ctx.audit.resources.push(key.arn);
    return { PolicyNames: ['default'], Truncated: false };
  },

  async Encrypt(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    const ec = context(body);
    const plaintext = b64(body.Plaintext, 'plaintext');
    if (plaintext.length < 1 || plaintext.length > 4096) throw new KmsError('ValidationException', 'Plaintext must be 1 to 4096 bytes');
    ctx.audit.resources.push(key.arn);
    authorize(key, 'kms:Encrypt', ctx, conditionKeys(null, ec));
    usable(key);
    dryRun(body);
    return { CiphertextBlob: cfg.state.encrypt(key, plaintext, ec).toString('base64'), KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
  },

  async Decrypt(cfg, body, ctx) {
    const blob = b64(body.CiphertextBlob, 'ciphertextBlob');
    const ec = context(body);
    ctx.audit.requestParameters.encryptionContext = ec;
    const recipient = await recipientOf(cfg, body, ctx);
    const key = blobKey(cfg, blob, body.KeyId, ctx);
    ctx.audit.resources.push(key.arn);
    authorize(key, 'kms:Decrypt', ctx, conditionKeys(recipient, ec));
    usable(key);
    const plaintext = cfg.state.decrypt(key, blob, ec);
    if (!plaintext) throw new KmsError('InvalidCiphertextException', '');
    if (body.DryRun === true) plaintext.fill(0);
    dryRun(body);
    return { KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT', ...forRecipient(recipient, plaintext, 'Plaintext') };
  },

  async ReEncrypt(cfg, body, ctx) {
    const blob = b64(body.CiphertextBlob, 'ciphertextBlob');
    const sourceContext = context(body, 'SourceEncryptionContext');
    const destinationContext = context(body, 'DestinationEncryptionContext');
    const destination = findKey(cfg, requireString(body, 'DestinationKeyId'), ctx, 'any', true);
    const source = blobKey(cfg, blob, body.SourceKeyId, ctx);
    ctx.audit.resources.push(source.arn, destination.arn);
    // KMS authorizes ReEncrypt as two actions: ReEncryptFrom on the source key, ReEncryptTo on the destination.
    authorize(source, 'kms:ReEncryptFrom', ctx, conditionKeys(null, sourceContext));
    authorize(destination, 'kms:ReEncryptTo', ctx, conditionKeys(null, destinationContext));
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
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    const ec = context(body);
    const size = dataKeyBytes(body);
    const recipient = await recipientOf(cfg, body, ctx);
    ctx.audit.resources.push(key.arn);
    authorize(key, 'kms:GenerateDataKey', ctx, conditionKeys(recipient, ec));
    usable(key);
    dryRun(body);
    const plaintext = randomBytes(size);
    const blob = cfg.state.encrypt(key, plaintext, ec);
    return { KeyId: key.arn, CiphertextBlob: blob.toString('base64'), ...forRecipient(recipient, plaintext, 'Plaintext') };
  },

  async GenerateDataKeyWithoutPlaintext(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    const ec = context(body);
    const size = dataKeyBytes(body);
    ctx.audit.resources.push(key.arn);
    authorize(key, 'kms:GenerateDataKeyWithoutPlaintext', ctx, conditionKeys(null, ec));
    usable(key);
    dryRun(body);
    const plaintext = randomBytes(size);
    const blob = cfg.state.encrypt(key, plaintext, ec);
    plaintext.fill(0);
    return { KeyId: key.arn, CiphertextBlob: blob.toString('base64') };
  },

  async GenerateDataKeyPair(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    const ec = context(body);
    const spec = requireString(body, 'KeyPairSpec');
    const recipient = await recipientOf(cfg, body, ctx);
    ctx.audit.resources.push(key.arn);
    authorize(key, 'kms:GenerateDataKeyPair', ctx, conditionKeys(recipient, ec));
    usable(key);
    keyPairCurve(spec);
    dryRun(body);
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
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
    authorize(key, 'kms:GetPublicKey', ctx, {});
    usable(key, 'KEY_AGREEMENT');
    const publicKey = createPublicKey(createPrivateKey({ key: key.material, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
    return { KeyId: key.arn, PublicKey: publicKey.toString('base64'), KeySpec: key.spec, KeyUsage: key.usage, KeyAgreementAlgorithms: ['ECDH'] };
  },

  async DeriveSharedSecret(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'any', true);
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

/** `PolicyName`: KMS keys have one policy, named `default`. */
function policyName(body: Json): void {
  const name = body.PolicyName ?? 'default';
  if (name !== 'default') throw new KmsError('ValidationException', `1 validation error detected: Value '${String(name)}' at 'policyName' failed to satisfy constraint: Member must satisfy regular expression pattern: default`);
}

/** The key a ciphertext blob belongs to (any account of the region: the blob names it), checked against an optional `KeyId`. */
function blobKey(cfg: OperationConfig, blob: Buffer, keyIdParam: unknown, ctx: CallContext): KeyRecord {
  cfg.state.expire(ctx.now);
  const owner = cfg.state.blobKeyId(blob);
  const key = owner ? cfg.state.keys.get(owner) : undefined;
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
