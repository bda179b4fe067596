import { createCipheriv, createDecipheriv, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion' | 'PendingImport' | 'PendingReplicaDeletion';

/** Where a key's material came from (`Origin` in KMS's KeyMetadata). */
export type KeyOrigin = 'AWS_KMS' | 'EXTERNAL';

/** A grant on one key (KMS's GrantListEntry, plus the token that names it). */
export interface GrantRecord {
  grantId: string;
  /** ARN of the key the grant is on. */
  keyArn: string;
  name?: string;
  /** Seconds since the epoch. */
  creationDate: number;
  granteePrincipal: string;
  retiringPrincipal?: string;
  /** `arn:aws:iam::<account>:root` of the account the grant was created in. */
  issuingAccount: string;
  operations: string[];
  constraints?: { EncryptionContextEquals?: Record<string, string>; EncryptionContextSubset?: Record<string, string> };
  /** The grant tokens CreateGrant returned for it (opaque to callers; a repeated idempotent CreateGrant adds one). */
  tokens: string[];
  /** Milliseconds since the epoch from which the grant works without its token (eventual consistency). */
  effectiveAtMs: number;
}

/** What GetParametersForImport handed out: the wrapping key pair and algorithm behind one import token. */
export interface ImportParameters {
  keyArn: string;
  wrappingAlgorithm: string;
  /** PKCS#8 DER of the RSA wrapping private key. */
  privateKey: Buffer;
  /** Seconds since the epoch (24 hours after issue). */
  validTo: number;
}

/** The import side of a key with Origin EXTERNAL. */
export interface ImportRecord {
  /** `KEY_MATERIAL_EXPIRES` with `validTo` (seconds since the epoch), or `KEY_MATERIAL_DOES_NOT_EXPIRE`. */
  expirationModel?: 'KEY_MATERIAL_EXPIRES' | 'KEY_MATERIAL_DOES_NOT_EXPIRE';
  validTo?: number;
  /** SHA-256 (hex) of the first material imported into this key or any key of its multi-Region set: KMS accepts only the same material again. */
  materialDigest?: string;
  /** `KeyMaterialId` of the material (random, kept across re-imports of the same material). */
  materialId?: string;
}

export interface KeyRecord {
  keyId: string;
  arn: string;
  /** The AWS account that owns the key. */
  accountId: string;
  /** The region the key lives in (the replicas of a multi-Region key share its `keyId`, each in its region). */
  region: string;
  origin: KeyOrigin;
  multiRegion: boolean;
  /** For a multi-Region key: whether this one is the primary (else a replica). */
  primary?: boolean;
  /** Origin EXTERNAL: the state of the imported material. */
  imported?: ImportRecord;
  description: string;
  creationDate: number;
  keyState: KeyState;
  /** Seconds since the epoch, while `keyState` is `PendingDeletion`. */
  deletionDate?: number;
  /** The waiting period of a multi-Region primary in `PendingReplicaDeletion`: it starts when its last replica is deleted. */
  pendingWindowInDays?: number;
  policy: string;
  /** AES-256 key material, or the PKCS#8 DER private key of a key agreement key; empty while an EXTERNAL key waits for its material. */
  material: Buffer;
  spec: 'SYMMETRIC_DEFAULT' | 'ECC_NIST_P256' | 'ECC_NIST_P384' | 'ECC_NIST_P521';
  usage: 'ENCRYPT_DECRYPT' | 'KEY_AGREEMENT';
}

type SerializedKey = Omit<KeyRecord, 'material' | 'keyState' | 'accountId' | 'region' | 'origin' | 'multiRegion'> & {
  material: string;
  keyState?: KeyState;
  enabled?: boolean;
  accountId?: string;
  region?: string;
  origin?: KeyOrigin;
  multiRegion?: boolean;
};

export interface SerializedState {
  version: 1 | 2;
  keys: SerializedKey[];
  /** v1: alias name → key id (home account); v2: alias ARN → key id. */
  aliases: Record<string, string>;
  grants?: GrantRecord[];
}

export interface CreateKeyOptions {
  region: string;
  accountId: string;
  description: string;
  policy: string;
  now: Date;
  spec?: KeyRecord['spec'];
  origin?: KeyOrigin;
  multiRegion?: boolean;
}

const BLOB_MAGIC = 0x4e; // 'N'

/** Canonical form of an encryption context: sorted keys, so order never matters. */
export function canonicalContext(context: Record<string, string> | undefined): string {
  const entries = Object.entries(context ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(entries);
}

/**
 * Keys, aliases and grants of every simulated account in every simulated
 * region, and the opaque ciphertext format. Keys are stored by key ARN (the
 * replicas of a multi-Region key share its key id, one per region); aliases
 * by alias ARN, because each account has its own alias namespace per region;
 * grants by grant id.
 */
export class KmsState {
  /** Key ARN → key. */
  readonly keys = new Map<string, KeyRecord>();
  /** Alias ARN → key id. */
  readonly aliases = new Map<string, string>();
  /** Grant id → grant. */
  readonly grants = new Map<string, GrantRecord>();
  /** Import token (base64) → its wrapping key; kept in memory only (a restarted simulator has forgotten them, so its tokens fail). */
  readonly importParameters = new Map<string, ImportParameters>();
  /** Told what KMS does by itself (deleting a key, expired imported material), for the trail's service events. */
  onServiceEvent?: (eventName: 'DeleteKey' | 'DeleteExpiredKeyMaterial', keyArn: string, now: Date) => void;

  constructor(
    /** The home region (of a state file written before keys had a region). */
    readonly region: string,
    /** The account a v1 state file (single account) belongs to. */
    readonly homeAccountId: string,
    private readonly file: string | null,
  ) {
    if (file && existsSync(file)) this.load(JSON.parse(readFileSync(file, 'utf8')) as SerializedState);
  }

  keyArn(region: string, accountId: string, keyId: string): string {
    return `arn:aws:kms:${region}:${accountId}:key/${keyId}`;
  }

  aliasArn(region: string, accountId: string, aliasName: string): string {
    return `arn:aws:kms:${region}:${accountId}:${aliasName}`;
  }

  /** The key with this id in this region and account. */
  key(region: string, accountId: string, keyId: string): KeyRecord | undefined {
    return this.keys.get(this.keyArn(region, accountId, keyId));
  }

  /** Every key of a multi-Region key set (the primary and its replicas), in any region. */
  related(key: KeyRecord): KeyRecord[] {
    if (!key.multiRegion) return [key];
    return [...this.keys.values()].filter((k) => k.multiRegion && k.keyId === key.keyId && k.accountId === key.accountId);
  }

  createKey(o: CreateKeyOptions): KeyRecord {
    const spec = o.spec ?? 'SYMMETRIC_DEFAULT';
    const origin = o.origin ?? 'AWS_KMS';
    // Multi-Region key ids are `mrk-` and 32 hex digits (36 characters, as long as a UUID).
    const keyId = o.multiRegion ? `mrk-${randomBytes(16).toString('hex')}` : randomUUID();
    const curves = { ECC_NIST_P256: 'P-256', ECC_NIST_P384: 'P-384', ECC_NIST_P521: 'P-521' } as const;
    const material =
      origin === 'EXTERNAL'
        ? Buffer.alloc(0)
        : spec === 'SYMMETRIC_DEFAULT'
          ? randomBytes(32)
          : generateKeyPairSync('ec', { namedCurve: curves[spec] }).privateKey.export({ format: 'der', type: 'pkcs8' });
    const record: KeyRecord = {
      keyId,
      arn: this.keyArn(o.region, o.accountId, keyId),
      accountId: o.accountId,
      region: o.region,
      origin,
      multiRegion: o.multiRegion ?? false,
      ...(o.multiRegion ? { primary: true } : {}),
      ...(origin === 'EXTERNAL' ? { imported: {} } : {}),
      description: o.description,
      creationDate: o.now.getTime() / 1000,
      keyState: origin === 'EXTERNAL' ? 'PendingImport' : 'Enabled',
      policy: o.policy,
      material,
      spec,
      usage: spec === 'SYMMETRIC_DEFAULT' ? 'ENCRYPT_DECRYPT' : 'KEY_AGREEMENT',
    };
    this.keys.set(record.arn, record);
    this.save();
    return record;
  }

  /**
   * A replica of a multi-Region primary in `region`: the same key id, its
   * own policy and description. KMS-generated material is shared (one
   * Buffer); a replica of an EXTERNAL key starts without material, and only
   * the same material can be imported into it.
   */
  replicate(primary: KeyRecord, region: string, policy: string, description: string, now: Date): KeyRecord {
    const external = primary.origin === 'EXTERNAL';
    const replica: KeyRecord = {
      ...primary,
      arn: this.keyArn(region, primary.accountId, primary.keyId),
      region,
      primary: false,
      policy,
      description,
      creationDate: now.getTime() / 1000,
      keyState: external ? 'PendingImport' : 'Enabled',
      material: external ? Buffer.alloc(0) : primary.material,
      ...(external ? { imported: primary.imported?.materialDigest ? { materialDigest: primary.imported.materialDigest } : {} } : {}),
    };
    delete replica.deletionDate;
    delete replica.pendingWindowInDays;
    this.keys.set(replica.arn, replica);
    this.save();
    return replica;
  }

  /** The aliases of one account in one region, as `[aliasName, keyId]`. */
  aliasesOf(region: string, accountId: string): Array<[string, string]> {
    const prefix = this.aliasArn(region, accountId, '');
    return [...this.aliases].filter(([arn]) => arn.startsWith(prefix)).map(([arn, keyId]) => [arn.slice(prefix.length), keyId]);
  }

  /** The grants on one key. */
  grantsOf(keyArn: string): GrantRecord[] {
    return [...this.grants.values()].filter((g) => g.keyArn === keyArn);
  }

  /** Deletes keys whose deletion date has passed (KMS deletes them then), with their aliases. */
  expire(now: Date): void {
    let changed = false;
    for (const [arn, key] of this.keys) {
      if (key.keyState === 'PendingDeletion' && key.deletionDate !== undefined && key.deletionDate * 1000 <= now.getTime()) {
        // Replicas of a KMS-generated key share the material Buffer: zero it only with the last key of the set.
        if (key.origin === 'EXTERNAL' || this.related(key).length === 1) key.material.fill(0);
        this.keys.delete(arn);
        const prefix = this.aliasArn(key.region, key.accountId, '');
        for (const [alias, target] of this.aliases) if (target === key.keyId && alias.startsWith(prefix)) this.aliases.delete(alias);
        for (const [id, grant] of this.grants) if (grant.keyArn === arn) this.grants.delete(id);
        this.onServiceEvent?.('DeleteKey', arn, now);
        changed = true;
      }
      // A primary whose replicas are all gone starts its own waiting period.
      if (key.keyState === 'PendingReplicaDeletion' && this.related(key).length === 1) {
        key.keyState = 'PendingDeletion';
        key.deletionDate = Math.floor(now.getTime() / 1000) + (key.pendingWindowInDays ?? 30) * 86_400;
        changed = true;
      }
      // Imported material that expires is deleted by KMS at its ValidTo.
      if (key.imported?.validTo !== undefined && key.imported.validTo * 1000 <= now.getTime() && key.material.length > 0) {
        this.deleteMaterial(key);
        this.onServiceEvent?.('DeleteExpiredKeyMaterial', arn, now);
        changed = true;
      }
    }
    if (changed) this.save();
  }

  /** Deletes imported material from one key (each key of a multi-Region set imports its own copy): it returns to PendingImport (or stays pending deletion). */
  deleteMaterial(key: KeyRecord): void {
    key.material.fill(0);
    key.material = Buffer.alloc(0);
    if (key.imported) {
      delete key.imported.validTo;
      delete key.imported.expirationModel;
    }
    if (key.keyState !== 'PendingDeletion' && key.keyState !== 'PendingReplicaDeletion') key.keyState = 'PendingImport';
  }

  /** An opaque blob bound to the key and the encryption context (AES-256-GCM). */
  encrypt(key: KeyRecord, plaintext: Uint8Array, context: Record<string, string> | undefined): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.material, iv);
    cipher.setAAD(Buffer.from(`${key.keyId}|${canonicalContext(context)}`));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.from([BLOB_MAGIC]), Buffer.from(key.keyId, 'ascii'), iv, cipher.getAuthTag(), body]);
  }

  /** The key a blob claims to belong to, or `undefined` if the blob is not ours. */
  blobKeyId(blob: Uint8Array): string | undefined {
    if (blob.length < 1 + 36 + 12 + 16 || blob[0] !== BLOB_MAGIC) return undefined;
    return Buffer.from(blob.subarray(1, 37)).toString('ascii');
  }

  /** `null` when the blob does not open with this key and context. */
  decrypt(key: KeyRecord, blob: Uint8Array, context: Record<string, string> | undefined): Buffer | null {
    try {
      const iv = blob.subarray(37, 49);
      const tag = blob.subarray(49, 65);
      const decipher = createDecipheriv('aes-256-gcm', key.material, iv);
      decipher.setAAD(Buffer.from(`${key.keyId}|${canonicalContext(context)}`));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(blob.subarray(65)), decipher.final()]);
    } catch {
      return null;
    }
  }

  /** Writes the state atomically (temp file + rename) when a state file is configured. */
  save(): void {
    if (!this.file) return;
    const state: SerializedState = {
      version: 2,
      keys: [...this.keys.values()].map((k) => ({ ...k, material: k.material.toString('base64') })),
      aliases: Object.fromEntries(this.aliases),
      grants: [...this.grants.values()],
    };
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, JSON.stringify(state, null, 2), { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  private load(state: SerializedState): void {
    if (state.version !== 1 && state.version !== 2) throw new Error(`unsupported simulator state version ${String(state.version)}`);
    for (const k of state.keys) {
      const { enabled, ...rest } = k;
      const accountId = k.accountId ?? /^arn:aws:kms:[^:]+:(\d{12}):/.exec(k.arn)?.[1] ?? this.homeAccountId;
      const region = k.region ?? /^arn:aws:kms:([^:]+):/.exec(k.arn)?.[1] ?? this.region;
      this.keys.set(k.arn, {
        ...rest,
        accountId,
        region,
        origin: k.origin ?? 'AWS_KMS',
        multiRegion: k.multiRegion ?? false,
        keyState: k.keyState ?? (enabled === false ? 'Disabled' : 'Enabled'),
        spec: k.spec ?? 'SYMMETRIC_DEFAULT',
        usage: k.usage ?? 'ENCRYPT_DECRYPT',
        material: Buffer.from(k.material, 'base64'),
      });
    }
    // Replicas of one multi-Region key share one material Buffer, as they share the key material.
    for (const k of this.keys.values()) if (k.multiRegion && k.origin === 'AWS_KMS') k.material = this.related(k).find((r) => r.primary)?.material ?? k.material;
    for (const [alias, target] of Object.entries(state.aliases)) this.aliases.set(state.version === 1 ? this.aliasArn(this.region, this.homeAccountId, alias) : alias, target);
    for (const g of state.grants ?? []) this.grants.set(g.grantId, g);
  }
}
