import { createCipheriv, createDecipheriv, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';

export interface KeyRecord {
  keyId: string;
  arn: string;
  description: string;
  creationDate: number;
  enabled: boolean;
  policy: string;
  /** AES-256 key material, or the PKCS#8 DER private key of a key agreement key. */
  material: Buffer;
  spec: 'SYMMETRIC_DEFAULT' | 'ECC_NIST_P256' | 'ECC_NIST_P384' | 'ECC_NIST_P521';
  usage: 'ENCRYPT_DECRYPT' | 'KEY_AGREEMENT';
}

export interface SerializedState {
  version: 1;
  keys: Array<Omit<KeyRecord, 'material'> & { material: string }>;
  aliases: Record<string, string>;
}

const BLOB_MAGIC = 0x4e; // 'N'

/** Canonical form of an encryption context: sorted keys, so order never matters. */
export function canonicalContext(context: Record<string, string> | undefined): string {
  const entries = Object.entries(context ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(entries);
}

/** Keys, aliases and the opaque ciphertext format of the simulator. */
export class KmsState {
  readonly keys = new Map<string, KeyRecord>();
  readonly aliases = new Map<string, string>();

  constructor(
    readonly region: string,
    readonly accountId: string,
    private readonly file: string | null,
  ) {
    if (file && existsSync(file)) this.load(JSON.parse(readFileSync(file, 'utf8')) as SerializedState);
  }

  createKey(description: string, policy: string, now: Date, spec: KeyRecord['spec'] = 'SYMMETRIC_DEFAULT'): KeyRecord {
    const keyId = randomUUID();
    const curves = { ECC_NIST_P256: 'P-256', ECC_NIST_P384: 'P-384', ECC_NIST_P521: 'P-521' } as const;
    const material =
      spec === 'SYMMETRIC_DEFAULT' ? randomBytes(32) : generateKeyPairSync('ec', { namedCurve: curves[spec] }).privateKey.export({ format: 'der', type: 'pkcs8' });
    const record: KeyRecord = {
      keyId,
      arn: `arn:aws:kms:${this.region}:${this.accountId}:key/${keyId}`,
      description,
      creationDate: now.getTime() / 1000,
      enabled: true,
      policy,
      material,
      spec,
      usage: spec === 'SYMMETRIC_DEFAULT' ? 'ENCRYPT_DECRYPT' : 'KEY_AGREEMENT',
    };
    this.keys.set(keyId, record);
    this.save();
    return record;
  }

  /** Resolves a key id, key ARN, alias name or alias ARN; `undefined` when unknown. */
  resolve(id: string): KeyRecord | undefined {
    const aliasArn = /^arn:aws:kms:[^:]+:\d{12}:(alias\/.+)$/.exec(id);
    const keyArn = /^arn:aws:kms:[^:]+:\d{12}:key\/(.+)$/.exec(id);
    const alias = aliasArn ? aliasArn[1]! : id.startsWith('alias/') ? id : null;
    if (alias) {
      const target = this.aliases.get(alias);
      return target ? this.keys.get(target) : undefined;
    }
    return this.keys.get(keyArn ? keyArn[1]! : id);
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
      version: 1,
      keys: [...this.keys.values()].map((k) => ({ ...k, material: k.material.toString('base64') })),
      aliases: Object.fromEntries(this.aliases),
    };
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, JSON.stringify(state, null, 2), { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  private load(state: SerializedState): void {
    if (state.version !== 1) throw new Error(`unsupported simulator state version ${String(state.version)}`);
    for (const k of state.keys) this.keys.set(k.keyId, { ...k, spec: k.spec ?? 'SYMMETRIC_DEFAULT', usage: k.usage ?? 'ENCRYPT_DECRYPT', material: Buffer.from(k.material, 'base64') });
    for (const [alias, target] of Object.entries(state.aliases)) this.aliases.set(alias, target);
  }
}
