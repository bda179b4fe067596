// A second implementation of the wire formats, written from docs/formats.md alone: only node:crypto
// primitives (AES-256-ECB, AES-256-GCM, HMAC-SHA256) and the constants as the doc's table states
// them. Nothing here imports src/, so a test that feeds it bytes our code produced (and the other
// way round) checks the code against the spec, not against itself.
import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const FORMATS_MD = join(import.meta.dirname, '..', '..', 'docs', 'formats.md');

/** The doc's machine-readable constants table (between its `constants` markers): name → JSON value. */
export function docConstants(text = readFileSync(FORMATS_MD, 'utf8')): Map<string, unknown> {
  const start = text.indexOf('<!-- constants:begin -->');
  const end = text.indexOf('<!-- constants:end -->');
  if (start < 0 || end < start) throw new Error('docs/formats.md has no constants table');
  const out = new Map<string, unknown>();
  for (const line of text.slice(start, end).split('\n')) {
    const m = /^\|\s*`([^`]+)`\s*\|\s*`([^`]+)`\s*\|/.exec(line);
    if (!m) continue;
    if (out.has(m[1]!)) throw new Error(`constant ${m[1]} is stated twice`);
    out.set(m[1]!, JSON.parse(m[2]!));
  }
  return out;
}

const c = docConstants();
function str(name: string): string {
  const v = c.get(name);
  if (typeof v !== 'string') throw new Error(`docs/formats.md states no string ${name}`);
  return v;
}
function num(name: string): number {
  const v = c.get(name);
  if (typeof v !== 'number') throw new Error(`docs/formats.md states no number ${name}`);
  return v;
}

const be16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);

/** key id = HMAC-SHA256(key, label)[0..8]. */
export function keyIdBySpec(key: Uint8Array): Buffer {
  return createHmac('sha256', key).update(str('tsk.keyIdLabel'), 'utf8').digest().subarray(0, 8);
}

/** XAES-256-GCM key and nonce derivation (C2SP), as formats.md spells it out. */
function xaes(key: Uint8Array, nonce: Uint8Array): { kx: Buffer; nx: Buffer } {
  const ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
  const l = ecb.update(Buffer.alloc(16));
  const k1 = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) k1[i] = ((l[i]! << 1) | (i < 15 ? l[i + 1]! >> 7 : 0)) & 0xff;
  if (l[0]! & 0x80) k1[15]! ^= 0x87;
  const m1 = Buffer.concat([Buffer.from([0x00, 0x01, 0x58, 0x00]), nonce.subarray(0, 12)]).map((b, i) => b ^ k1[i]!);
  const m2 = Buffer.concat([Buffer.from([0x00, 0x02, 0x58, 0x00]), nonce.subarray(0, 12)]).map((b, i) => b ^ k1[i]!);
  return { kx: Buffer.concat([ecb.update(m1), ecb.update(m2)]), nx: Buffer.from(nonce.subarray(12, 24)) };
}

/** u16be(len(label)) ‖ label: what a v2 envelope authenticates between its header and the data. */
function domainBytes(domain: 'encrypt' | 'sealedState' | 'temporalPayload'): Buffer {
  const label = Buffer.from(str(`tsk.domain.${domain}`), 'utf8');
  return Buffer.concat([be16(label.length), label]);
}

/** Opens a TSK envelope v2 of `domain` (or v1, which has no domain, when `domain` is null). Returns null when the tag fails. */
export function openEnvelopeBySpec(key: Uint8Array, envelope: Uint8Array, domain: 'encrypt' | 'sealedState' | 'temporalPayload' | null, data: Uint8Array = new Uint8Array(0)): Buffer | null {
  const tag = num('tsk.tagBytes');
  const version = envelope[0];
  const v2 = version === num('tsk.envelopeVersion');
  if (!v2 && !(version === 1 && domain === null)) throw new Error(`version ${version} is not openable here`);
  const headerLength = v2 ? num('tsk.v2HeaderBytes') : num('tsk.v1HeaderBytes');
  if (!keyIdBySpec(key).equals(envelope.subarray(1, 9))) throw new Error('key id differs');
  const header = envelope.subarray(0, headerLength);
  const nonce = envelope.subarray(9, headerLength);
  const d = v2 ? (() => {
    const { kx, nx } = xaes(key, nonce);
    return createDecipheriv('aes-256-gcm', kx, nx);
  })() : createDecipheriv('aes-256-gcm', key, nonce);
  d.setAAD(Buffer.concat([header, v2 ? domainBytes(domain!) : Buffer.alloc(0), data]));
  d.setAuthTag(envelope.subarray(envelope.length - tag));
  const out = d.update(envelope.subarray(headerLength, envelope.length - tag));
  try {
    d.final();
  } catch {
    return null;
  }
  return out;
}

/** Seals a TSK envelope v2 of `domain` under a given nonce (24 bytes). */
export function sealEnvelopeBySpec(key: Uint8Array, nonce: Uint8Array, domain: 'encrypt' | 'sealedState' | 'temporalPayload', plaintext: Uint8Array, data: Uint8Array = new Uint8Array(0)): Buffer {
  const header = Buffer.concat([Buffer.from([num('tsk.envelopeVersion')]), keyIdBySpec(key), nonce]);
  const { kx, nx } = xaes(key, nonce);
  const cipher = createCipheriv('aes-256-gcm', kx, nx);
  cipher.setAAD(Buffer.concat([header, domainBytes(domain), data]));
  return Buffer.concat([header, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

export interface SpecBinding {
  workflowId: string;
  chainId: string;
  activity: string;
  seq: number;
  producer: string;
}

/** The binding's encoding: u16 ‖ workflowId, chain id, u16 ‖ activity, u64 seq, u16 ‖ producer. */
export function encodeBindingBySpec(b: SpecBinding): Buffer {
  const s = (v: string) => {
    const bytes = Buffer.from(v, 'utf8');
    return Buffer.concat([be16(bytes.length), bytes]);
  };
  const seq = Buffer.alloc(8);
  seq.writeBigUInt64BE(BigInt(b.seq));
  const chain = Buffer.from(b.chainId, 'hex');
  if (chain.length !== num('sealedState.chainIdBytes')) throw new Error('bad chain id');
  return Buffer.concat([s(b.workflowId), chain, s(b.activity), seq, s(b.producer)]);
}

/** Splits and opens a sealed state; null when the tag fails. */
export function openSealedStateBySpec(key: Uint8Array, sealed: Uint8Array): { binding: SpecBinding; plaintext: Buffer } | null {
  if (sealed[0] !== num('sealedState.format')) throw new Error(`format ${sealed[0]}`);
  const b = (sealed[1]! << 8) | sealed[2]!;
  const prefix = sealed.subarray(0, 3 + b);
  const bytes = Buffer.from(sealed.subarray(3, 3 + b));
  let o = 0;
  const s = () => {
    const n = bytes.readUInt16BE(o);
    const v = bytes.subarray(o + 2, o + 2 + n).toString('utf8');
    o += 2 + n;
    return v;
  };
  const workflowId = s();
  const chainBytes = num('sealedState.chainIdBytes');
  const chainId = bytes.subarray(o, o + chainBytes).toString('hex');
  o += chainBytes;
  const activity = s();
  const seq = Number(bytes.readBigUInt64BE(o));
  o += 8;
  const producer = s();
  if (o !== bytes.length) throw new Error('trailing bytes in binding');
  const plaintext = openEnvelopeBySpec(key, sealed.subarray(3 + b), 'sealedState', prefix);
  return plaintext && { binding: { workflowId, chainId, activity, seq, producer }, plaintext };
}

/** Builds a sealed state under a given nonce. */
export function sealStateBySpec(key: Uint8Array, nonce: Uint8Array, binding: SpecBinding, plaintext: Uint8Array): Buffer {
  const bytes = encodeBindingBySpec(binding);
  const prefix = Buffer.concat([Buffer.from([num('sealedState.format')]), be16(bytes.length), bytes]);
  return Buffer.concat([prefix, sealEnvelopeBySpec(key, nonce, 'sealedState', plaintext, prefix)]);
}

/** Opens an encrypted Temporal payload (metadata checked as the doc says); returns the serialized inner Payload, or null when the tag fails. */
export function openPayloadBySpec(key: Uint8Array, payload: { metadata?: Record<string, Uint8Array | null | undefined> | null; data?: Uint8Array | null }): Buffer | null {
  const meta = payload.metadata ?? {};
  const text = (k: string) => Buffer.from(meta[k] ?? new Uint8Array(0)).toString('utf8');
  if (text('encoding') !== str('codec.encoding')) throw new Error('not encrypted');
  if (text(str('codec.metadataCipher')) !== str('codec.cipherTag')) throw new Error('cipher tag');
  if (text(str('codec.metadataKeyId')) !== keyIdBySpec(key).toString('hex')) throw new Error('key id');
  return openEnvelopeBySpec(key, payload.data!, 'temporalPayload');
}
