import { constants, createDecipheriv, createHash, createPrivateKey, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto';
import { KmsError } from './errors.js';
import { authorize, b64, findKey, requireString, type CallContext, type Handler, type OperationConfig } from './shared.js';
import type { KeyRecord } from './state.js';

/** Wrapping algorithms KMS lists for imports into symmetric encryption keys, outside the China Regions (SM2PKE is China-only). */
const WRAPPING_ALGORITHMS = ['RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256', 'RSA_AES_KEY_WRAP_SHA_1', 'RSA_AES_KEY_WRAP_SHA_256'] as const;
const MODEL_ALGORITHMS = ['RSAES_PKCS1_V1_5', ...WRAPPING_ALGORITHMS, 'SM2PKE'];
const WRAPPING_KEY_SPECS: Record<string, number> = { RSA_2048: 2048, RSA_3072: 3072, RSA_4096: 4096 };
const DAY_S = 86_400;

const validation = (message: string) => new KmsError('ValidationException', message);

/** Import works only on keys created for it (Origin EXTERNAL). */
function external(key: KeyRecord): void {
  if (key.origin !== 'EXTERNAL') throw new KmsError('UnsupportedOperationException', `${key.arn} origin is ${key.origin} which is not valid for this operation.`);
}

function notDeleting(key: KeyRecord): void {
  if (key.keyState === 'PendingDeletion' || key.keyState === 'PendingReplicaDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
}

/**
 * Unwraps imported material as KMS does for the algorithm named in
 * GetParametersForImport: RSA-OAEP (SHA-1 or SHA-256, MGF1 with the same
 * hash) of the material, or RSA-OAEP of an ephemeral AES-256 key followed by
 * the material wrapped under it with AES Key Wrap with Padding (RFC 5649).
 */
function unwrap(algorithm: string, privateKeyDer: Buffer, wrapped: Buffer): Buffer | null {
  const key = createPrivateKey({ key: privateKeyDer, format: 'der', type: 'pkcs8' });
  const hash = algorithm.endsWith('SHA_1') ? 'sha1' : 'sha256';
  try {
    if (algorithm.startsWith('RSAES_OAEP')) return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, wrapped);
    const modulusBytes = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
    if (modulusBytes === 0 || wrapped.length <= modulusBytes) return null;
    const aesKey = privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, wrapped.subarray(0, modulusBytes));
    if (aesKey.length !== 32) return null;
    const decipher = createDecipheriv('id-aes256-wrap-pad', aesKey, Buffer.from('a65959a6', 'hex'));
    const out = Buffer.concat([decipher.update(wrapped.subarray(modulusBytes)), decipher.final()]);
    aesKey.fill(0);
    return out;
  } catch {
    return null;
  }
}

function importTokenOf(cfg: OperationConfig, body: { ImportToken?: unknown }, key: KeyRecord, ctx: CallContext) {
  const token = b64(body.ImportToken, 'importToken').toString('base64');
  const params = cfg.state.importParameters.get(token);
  if (!params || params.keyArn !== key.arn) throw new KmsError('InvalidImportTokenException', 'The import token is invalid for the specified key.');
  if (params.validTo * 1000 <= ctx.now.getTime()) throw new KmsError('ExpiredImportTokenException', 'The import token has expired.');
  return params;
}

/** GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial: a key whose material its owner brings (Origin EXTERNAL). */
export const IMPORT_HANDLERS: Record<string, Handler> = {
  async GetParametersForImport(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    const algorithm = requireString(body, 'WrappingAlgorithm');
    const spec = requireString(body, 'WrappingKeySpec');
    if (!MODEL_ALGORITHMS.includes(algorithm)) {
      throw validation(`1 validation error detected: Value '${algorithm}' at 'wrappingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [${MODEL_ALGORITHMS.join(', ')}]`);
    }
    if (!(spec in WRAPPING_KEY_SPECS) && spec !== 'SM2') throw validation(`1 validation error detected: Value '${spec}' at 'wrappingKeySpec' failed to satisfy constraint: Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, SM2]`);
    ctx.audit.resources.push(key.arn);
    authorize(cfg, key, 'kms:GetParametersForImport', ctx, { 'kms:WrappingAlgorithm': algorithm, 'kms:WrappingKeySpec': spec });
    external(key);
    notDeleting(key);
    // KMS stopped accepting RSAES_PKCS1_V1_5 for new imports in October 2023; SM2 is for the China Regions only.
    if (algorithm === 'RSAES_PKCS1_V1_5') throw validation('The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported.');
    if (algorithm === 'SM2PKE' || spec === 'SM2') throw validation('SM2 wrapping is supported only in the China Regions.');
    const bits = WRAPPING_KEY_SPECS[spec]!;
    const pair = generateKeyPairSync('rsa', { modulusLength: bits });
    const privateKey = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
    const token = randomBytes(512);
    const validTo = Math.floor(ctx.now.getTime() / 1000) + DAY_S;
    cfg.state.importParameters.set(token.toString('base64'), { keyArn: key.arn, wrappingAlgorithm: algorithm, privateKey, validTo });
    return { KeyId: key.arn, ImportToken: token.toString('base64'), PublicKey: pair.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'), ParametersValidTo: validTo };
  },

  async ImportKeyMaterial(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    for (const f of ['ImportType', 'KeyMaterialDescription', 'KeyMaterialId']) if (body[f] !== undefined) throw validation(`The simulator does not model key material rotation (${f})`);
    const model = body.ExpirationModel ?? 'KEY_MATERIAL_EXPIRES';
    if (model !== 'KEY_MATERIAL_EXPIRES' && model !== 'KEY_MATERIAL_DOES_NOT_EXPIRE') {
      throw validation(`1 validation error detected: Value '${String(model)}' at 'expirationModel' failed to satisfy constraint: Member must satisfy enum value set: [KEY_MATERIAL_EXPIRES, KEY_MATERIAL_DOES_NOT_EXPIRE]`);
    }
    const validTo = body.ValidTo;
    if (model === 'KEY_MATERIAL_EXPIRES' && validTo === undefined) throw validation('A ValidTo date is required when ExpirationModel is KEY_MATERIAL_EXPIRES.');
    if (model === 'KEY_MATERIAL_DOES_NOT_EXPIRE' && validTo !== undefined) throw validation('ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.');
    const nowS = ctx.now.getTime() / 1000;
    if (validTo !== undefined && (typeof validTo !== 'number' || validTo <= nowS || validTo > nowS + 365 * DAY_S)) {
      throw validation('ValidTo must be a future date and time, at most 365 days from now.');
    }
    const wrapped = b64(body.EncryptedKeyMaterial, 'encryptedKeyMaterial');
    // CloudTrail never records the wrapped material or the import token.
    delete ctx.audit.requestParameters.encryptedKeyMaterial;
    delete ctx.audit.requestParameters.importToken;
    ctx.audit.resources.push(key.arn);
    authorize(cfg, key, 'kms:ImportKeyMaterial', ctx, { 'kms:ExpirationModel': model, ...(validTo !== undefined ? { 'kms:ValidTo': String(validTo) } : {}) });
    external(key);
    notDeleting(key);
    // Re-import means DeleteImportedKeyMaterial first: only a key without material takes material.
    if (key.keyState !== 'PendingImport') throw new KmsError('KMSInvalidStateException', `${key.arn} is ${key.keyState} and already has key material.`);
    const params = importTokenOf(cfg, body, key, ctx);
    const material = unwrap(params.wrappingAlgorithm, params.privateKey, wrapped);
    if (!material) throw new KmsError('InvalidCiphertextException', 'The encrypted key material could not be decrypted with the wrapping key of the import token.');
    if (material.length !== 32) {
      material.fill(0);
      throw new KmsError('IncorrectKeyMaterialException', 'The key material must be a 256-bit symmetric key.');
    }
    // Once a key (or any key of its multi-Region set) has had material, only the same material goes back in.
    const digest = createHash('sha256').update(material).digest('hex');
    const known = cfg.state.related(key).map((k) => k.imported).find((i) => i?.materialDigest !== undefined);
    if (known && known.materialDigest !== digest) {
      material.fill(0);
      throw new KmsError('IncorrectKeyMaterialException', 'The key material is not the same as the key material previously imported into this key.');
    }
    const materialId = known?.materialId ?? randomBytes(32).toString('hex');
    key.material = material;
    key.imported = { materialDigest: digest, materialId, expirationModel: model, ...(validTo !== undefined ? { validTo: validTo as number } : {}) };
    key.keyState = 'Enabled';
    cfg.state.importParameters.delete(b64(body.ImportToken, 'importToken').toString('base64'));
    cfg.state.save();
    return { KeyId: key.arn, KeyMaterialId: materialId };
  },

  async DeleteImportedKeyMaterial(cfg, body, ctx) {
    const key = findKey(cfg, requireString(body, 'KeyId'), ctx, 'key', false);
    if (body.KeyMaterialId !== undefined && body.KeyMaterialId !== key.imported?.materialId) throw new KmsError('NotFoundException', `Key material ${String(body.KeyMaterialId)} not found`);
    ctx.audit.resources.push(key.arn);
    authorize(cfg, key, 'kms:DeleteImportedKeyMaterial', ctx, {});
    external(key);
    if (key.keyState === 'PendingImport' || key.material.length === 0) throw new KmsError('KMSInvalidStateException', `${key.arn} is pending import.`);
    const materialId = key.imported?.materialId;
    cfg.state.deleteMaterial(key);
    cfg.state.save();
    return { KeyId: key.arn, ...(materialId ? { KeyMaterialId: materialId } : {}) };
  },
};
