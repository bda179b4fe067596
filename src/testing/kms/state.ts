import { createCipheriv, createDecipheriv, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';

export interface KeyRecord {
  keyId: string;
  arn: string;
  /** The AWS account that owns the key. */
  accountId: string;
  description: string;
  creationDate: number;
  keyState: KeyState;
  /** Seconds since the epoch, while `keyState` is `PendingDeletion`. */
  deletionDate?: number;
  policy: string;
  /** AES-256 key material, or the PKCS#8 DER private key of a key agreement key. */
  material: Buffer;
  spec: 'SYMMETRIC_DEFAULT' | 'ECC_NIST_P256' | 'ECC_NIST_P384' | 'ECC_NIST_P521';
  usage: 'ENCRYPT_DECRYPT' | 'KEY_AGREEMENT';
}

type SerializedKey = Omit<KeyRecord, 'material' | 'keyState' | 'accountId'> & { material: string; keyState?: KeyState; enabled?: boolean; accountId?: string };

export interface SerializedState {
  version: 1 | 2;
  keys: SerializedKey[];
  /** v1: alias name → key id (home account); v2: alias ARN → key id. */
  aliases: Record<string, string>;
}

const BLOB_MAGIC = 0x4e; // 'N'

/** Canonical form of an encryption context: sorted keys, so order never matters. */
export function canonicalContext(context: Record<string, string> | undefined): string {
  const entries = Object.entries(context ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(entries);
}

/**
 * Keys and aliases of every simulated account in one region, and the opaque
 * ciphertext format. Keys are stored by key id (UUIDs are unique across
 * accounts); aliases by alias ARN, because each account has its own alias
 * namespace.
 */
export class KmsState {
  readonly keys = new Map<string, KeyRecord>();
  /** Alias ARN → key id. */
  readonly aliases = new Map<string, string>();

  constructor(
    readonly region: string,
    /** The account a v1 state file (single account) belongs to. */
    readonly homeAccountId: string,
    private readonly file: string | null,
  ) {
    if (file && existsSync(file)) this.load(JSON.parse(readFileSync(file, 'utf8')) as SerializedState);
  }

  keyArn(accountId: string, keyId: string): string {
    return `arn:aws:kms:${this.region}:${accountId}:key/${keyId}`;
  }

  aliasArn(accountId: string, aliasName: string): string {
    return `arn:aws:kms:${this.region}:${accountId}:${aliasName}`;
  }

  createKey(accountId: string, description: string, policy: string, now: Date, spec: KeyRecord['spec'] = 'SYMMETRIC_DEFAULT'): KeyRecord {
    const keyId = randomUUID();
    const curves = { ECC_NIST_P256: 'P-256', ECC_NIST_P384: 'P-384', ECC_NIST_P521: 'P-521' } as const;
    const material =
      spec === 'SYMMETRIC_DEFAULT' ? randomBytes(32) : generateKeyPairSync('ec', { namedCurve: curves[spec] }).privateKey.export({ format: 'der', type: 'pkcs8' });
    const record: KeyRecord = {
      keyId,
      arn: this.keyArn(accountId, keyId),
      accountId,
      description,
      creationDate: now.getTime() / 1000,
      keyState: 'Enabled',
      policy,
      material,
      spec,
      usage: spec === 'SYMMETRIC_DEFAULT' ? 'ENCRYPT_DECRYPT' : 'KEY_AGREEMENT',
    };
    this.keys.set(keyId, record);
    this.save();
    return record;
  }

  /** The aliases of one account, as `[aliasName, keyId]`. */
  aliasesOf(accountId: string): Array<[string, string]> {
    const prefix = this.aliasArn(accountId, '');
    return [...this.aliases].filter(([arn]) => arn.startsWith(prefix)).map(([arn, keyId]) => [arn.slice(prefix.length), keyId]);
  }

  /** Deletes keys whose deletion date has passed (KMS deletes them then), with their aliases. */
  expire(now: Date): void {
    let changed = false;
    for (const [id, key] of this.keys) {
      if (key.keyState === 'PendingDeletion' && key.deletionDate !== undefined && key.deletionDate * 1000 <= now.getTime()) {
        key.material.fill(0);
        this.keys.delete(id);
        for (const [alias, target] of this.aliases) if (target === id) this.aliases.delete(alias);
        changed = true;
      }
    }
    if (changed) this.save();
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
      this.keys.set(k.keyId, {
        ...rest,
        accountId,
        keyState: k.keyState ?? (enabled === false ? 'Disabled' : 'Enabled'),
        spec: k.spec ?? 'SYMMETRIC_DEFAULT',
        usage: k.usage ?? 'ENCRYPT_DECRYPT',
        material: Buffer.from(k.material, 'base64'),
      });
    }
    for (const [alias, target] of Object.entries(state.aliases)) this.aliases.set(state.version === 1 ? this.aliasArn(this.homeAccountId, alias) : alias, target);
  }
}
