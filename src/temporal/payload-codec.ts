import type { Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import { types } from 'node:util';
import { NitroEnclaveError } from '../errors.js';
import { openInDomain, sealInDomain, TSK_ENVELOPE_VERSION } from '../kms/trusted-session-key.js';
import { toKeyRing, type CodecKey, type TskKeyRing } from './key-ring.js';

const ProtoPayload = proto.temporal.api.common.v1.Payload;

/**
 * `metadata.encoding` of an encrypted payload (the value Temporal's encryption sample uses).
 *
 * @example
 * ```ts
 * const encrypted = new TextDecoder().decode(payload.metadata?.encoding) === ENCRYPTED_ENCODING;
 * ```
 */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/**
 * Metadata key holding the TSK key id (16 hex characters, public): which key an operator must load.
 *
 * @example
 * ```ts
 * const keyId = new TextDecoder().decode(payload.metadata?.[METADATA_KEY_ID]);
 * ```
 */
export const METADATA_KEY_ID = 'encryption-key-id';
/**
 * Metadata key holding the cipher tag, {@link TSK_CIPHER_TAG} (`tsk-v2`).
 *
 * @example
 * ```ts
 * const cipher = new TextDecoder().decode(payload.metadata?.[METADATA_CIPHER]); // 'tsk-v2'
 * ```
 */
export const METADATA_CIPHER = 'encryption-cipher';

/**
 * The one cipher tag the codec writes and reads: `tsk-v` and the TSK envelope version, exactly
 * (`tsk-v02`, `tsk-v1` or `TSK-V2` are refused as ERR_CODEC_MALFORMED).
 *
 * @example
 * ```ts
 * new TextDecoder().decode(payload.metadata?.[METADATA_CIPHER]) === TSK_CIPHER_TAG; // true for this codec's payloads
 * ```
 */
export const TSK_CIPHER_TAG = `tsk-v${TSK_ENVELOPE_VERSION}`;

// Domain separation is the envelope's: payloads are sealed in their own domain (temporal/payload),
// so no tsk.encrypt(x, aad) is a payload, no sealed state is, and no payload opens anywhere else.
const text = new TextEncoder();
const untext = new TextDecoder('utf-8', { fatal: false });
const CIPHER_TAG_BYTES = text.encode(TSK_CIPHER_TAG);

/** Options of {@link createTskPayloadCodec}: the keys (or a key ring), the key to encode with, and whether to refuse unencrypted payloads. */
export interface TskPayloadCodecOptions {
  /**
   * One or more Trusted Session Keys (the last one encrypts), or a {@link TskKeyRing} that may
   * grow at run time (its newest key encrypts).
   */
  keys: CodecKey | readonly CodecKey[] | TskKeyRing;
  /** Encrypt with this key id instead of the newest key (it must be in `keys` when encoding). */
  encodeKeyId?: string;
  /**
   * Refuse payloads that are not encrypted (ERR_CODEC_UNENCRYPTED) instead of passing them through.
   * Off by default: histories written before the codec was deployed, payloads from clients or
   * other SDKs without it, and the server's own payloads would otherwise fail their workflow tasks
   * forever. Turn it on once every producer encrypts, to stop a client that forgot the codec from
   * writing plaintext that workers then accept.
   */
  rejectUnencrypted?: boolean;
}

/**
 * `bytes` as a Uint8Array of this realm over the same memory (no copy). Why: a workflow's payloads
 * are made inside its vm sandbox, and with `debugMode` (what `Worker.runReplayHistory` uses) the
 * codec receives them on the same thread, as Uint8Arrays of the sandbox's realm: `instanceof
 * Uint8Array` is false for those, and the envelope refuses them. Detected by the internal slot
 * (`types.isUint8Array`), which holds in every realm; anything else is not bytes.
 */
function ownRealm(bytes: unknown, what: string): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes;
  if (!types.isUint8Array(bytes)) throw new TypeError(`${what} must be a Uint8Array`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Temporal's Payload message for `payload`, as the parts its serialization is the concatenation of:
 * every field but `data`, encoded by @temporalio/proto, followed by `data`'s key and length (field 2,
 * bytes: protobuf allows fields in any order), then `data` itself, not copied. The envelope is
 * sealed over these parts without ever concatenating them. Why: a serialization buffer per payload
 * (protobufjs's own, or a reused one that must be zeroed) cost a copy and a clear of the whole
 * payload, and at 1 MiB their allocation and page faults as much as the AES-GCM pass itself
 * (measured: docs/performance-notes.md). The first part holds plaintext metadata: the caller zeroes it.
 */
function serializeParts(payload: Payload): [head: Uint8Array, data: Uint8Array] | [head: Uint8Array] {
  const data = payload.data == null ? undefined : ownRealm(payload.data, 'payload.data');
  const writer = ProtoPayload.encode({ ...payload, data: undefined });
  if (!data?.length) return [writer.finish()];
  // field 2, wire type 2 (length-delimited), then the length: appended to the same writer, so the
  // head is one buffer of protobufjs's own (no second allocation, no copy).
  return [writer.uint32(0x12).uint32(data.length).finish(), data];
}

const show = (s: string) => JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);

/**
 * A Temporal `PayloadCodec` that encrypts every payload with a Trusted Session Key. The whole
 * serialized `Payload` (its metadata and data) is sealed in a TSK envelope v2 of the codec's own
 * domain (docs/formats.md); the plaintext metadata of the result holds only
 * `encoding: binary/encrypted`, the key id and the cipher tag `tsk-v2`. A payload is not bound to
 * its place: Temporal's `PayloadCodec` gets no context (workflow, event, role), so whoever writes
 * the history can move an encrypted payload to another place under the same keys; it still opens. Decoding picks the key by key id, so keys rotate by adding the new one and keeping
 * the old ones for as long as histories hold payloads sealed with them.
 *
 * A decode failure throws a NitroEnclaveError (`ERR_CODEC_UNKNOWN_KEY`, `ERR_CODEC_DECRYPT_FAILED`,
 * `ERR_CODEC_MALFORMED`, `ERR_CODEC_UNENCRYPTED`) whose message names the key id and never holds
 * plaintext or key material. In a worker, a failed workflow activation fails the workflow task,
 * which the server retries until a worker can decode it (the workflow is stuck, not failed); a
 * failed activity input fails that attempt with a retryable error. Recover by loading the missing
 * key (`ring.add(await getTrustedSessionKey(...))` or a redeploy with it): the next retry succeeds.
 *
 * @example
 * ```ts
 * const codec = createTskPayloadCodec({ keys: [tsk] });
 * const client = new Client({ connection, dataConverter: { payloadCodecs: [codec] } });
 * ```
 */
export function createTskPayloadCodec(options: TskPayloadCodecOptions): PayloadCodec {
  if (typeof options !== 'object' || options === null) throw new TypeError('options are required');
  const ring = toKeyRing(options.keys);
  const { encodeKeyId, rejectUnencrypted = false } = options;
  if (encodeKeyId !== undefined && (typeof encodeKeyId !== 'string' || !/^[0-9a-f]{16}$/.test(encodeKeyId))) throw new TypeError('encodeKeyId must be a key id (16 lowercase hex characters)');
  if (typeof rejectUnencrypted !== 'boolean') throw new TypeError('rejectUnencrypted must be a boolean');
  if (encodeKeyId === undefined && !ring.newest) throw new TypeError('keys must hold at least one TrustedSessionKey');

  const missing = (keyId: string, doing: string) =>
    new NitroEnclaveError(
      'ERR_CODEC_UNKNOWN_KEY',
      `${doing} needs Trusted Session Key ${keyId}, which this codec does not hold (it holds ${ring.keyIds.join(', ') || 'none'}). ` +
        `Load the TSK with key id ${keyId} (getTrustedSessionKey with the ciphertext blob it was provisioned from) and add it to the codec's key ring (ring.add(tsk)); workflow tasks retry and then succeed.`,
    );

  function encodeKey(): CodecKey {
    if (encodeKeyId === undefined) return ring.newest!;
    const key = ring.get(encodeKeyId);
    if (!key) throw missing(encodeKeyId, 'encoding');
    return key;
  }

  function decodeOne(payload: Payload): Payload {
    const meta = payload.metadata ?? {};
    const encoding = meta.encoding ? untext.decode(meta.encoding) : undefined;
    if (encoding !== ENCRYPTED_ENCODING) {
      if (rejectUnencrypted) throw new NitroEnclaveError('ERR_CODEC_UNENCRYPTED', `refusing an unencrypted payload (encoding ${encoding === undefined ? 'absent' : show(encoding)}): rejectUnencrypted is set and every producer must use the TSK codec`);
      return payload;
    }
    const keyIdBytes = meta[METADATA_KEY_ID];
    const keyId = keyIdBytes ? untext.decode(keyIdBytes) : '';
    if (!/^[0-9a-f]{16}$/.test(keyId)) throw new NitroEnclaveError('ERR_CODEC_MALFORMED', `encrypted payload has no valid ${METADATA_KEY_ID} (got ${keyIdBytes ? show(keyId) : 'none'})`);
    const cipherBytes = meta[METADATA_CIPHER];
    // Byte-exact: only the tag this codec writes (no `tsk-v02`, no trailing bytes, no other version).
    if (!cipherBytes || !Buffer.from(cipherBytes).equals(CIPHER_TAG_BYTES)) {
      throw new NitroEnclaveError('ERR_CODEC_MALFORMED', `payload sealed with key ${keyId} has cipher ${show(cipherBytes ? untext.decode(cipherBytes) : '')}, not ${TSK_CIPHER_TAG} (another codec or version made it?)`);
    }
    const data = types.isUint8Array(payload.data) ? ownRealm(payload.data, 'payload.data') : undefined;
    if (!data?.length) throw new NitroEnclaveError('ERR_CODEC_MALFORMED', `payload sealed with key ${keyId} has no data`);
    if (data[0] !== TSK_ENVELOPE_VERSION) throw new NitroEnclaveError('ERR_CODEC_MALFORMED', `payload sealed with key ${keyId}: cipher tag ${TSK_CIPHER_TAG} but envelope version ${data[0]}`);
    const key = ring.get(keyId);
    if (!key) throw missing(keyId, 'decoding this payload');
    let plain: Uint8Array;
    try {
      plain = openInDomain(key, 'temporalPayload', data, undefined);
    } catch (err) {
      const code = (err as NitroEnclaveError).code;
      if (code === 'ERR_TSK_MALFORMED') throw new NitroEnclaveError('ERR_CODEC_MALFORMED', `payload sealed with key ${keyId}: ${(err as Error).message}`);
      if (code === 'ERR_TSK_WRONG_KEY') throw new NitroEnclaveError('ERR_CODEC_DECRYPT_FAILED', `payload metadata names key ${keyId} but its envelope was sealed with another key: the metadata was altered`);
      if (code === 'ERR_TSK_DECRYPT_FAILED') throw new NitroEnclaveError('ERR_CODEC_DECRYPT_FAILED', `payload sealed with key ${keyId} failed authentication: it was altered, or is not a Temporal payload sealed by this codec`);
      throw err;
    }
    try {
      return ProtoPayload.decode(plain);
    } catch {
      throw new NitroEnclaveError('ERR_CODEC_MALFORMED', `payload sealed with key ${keyId} authenticated but is not a serialized Payload`);
    }
  }

  return {
    async encode(payloads: Payload[]): Promise<Payload[]> {
      const key = encodeKey();
      return payloads.map((payload) => {
        const parts = serializeParts(payload);
        let sealed: Uint8Array;
        try {
          sealed = sealInDomain(key, 'temporalPayload', undefined, parts, undefined);
        } finally {
          parts[0].fill(0);
        }
        return {
          metadata: {
            encoding: text.encode(ENCRYPTED_ENCODING),
            [METADATA_KEY_ID]: text.encode(key.metadata.keyId),
            [METADATA_CIPHER]: CIPHER_TAG_BYTES.slice(),
          },
          data: sealed,
        };
      });
    },
    async decode(payloads: Payload[]): Promise<Payload[]> {
      return payloads.map(decodeOne);
    },
  };
}
