import { Encoder } from 'cbor-x';
import { NitroEnclaveError, type NsmErrorCode } from '../errors.js';
import { NSM_REQUEST_MAX, type NsmTransport } from './transport.js';

/** Field limit the NSM enforces on attestation inputs (AWS documents 512; real NSMs accept 1024). */
export const NSM_FIELD_MAX = 1024;

const cbor = new Encoder({ tagUint8Array: false, useRecords: false, mapsAsObjects: true, variableMapSize: true });

const ERROR_CODES: Record<string, NsmErrorCode> = {
  InvalidArgument: 'ERR_NSM_INVALID_ARGUMENT',
  InvalidIndex: 'ERR_NSM_INVALID_INDEX',
  InvalidResponse: 'ERR_NSM_INVALID_RESPONSE',
  ReadOnlyIndex: 'ERR_NSM_READ_ONLY_INDEX',
  InvalidOperation: 'ERR_NSM_INVALID_OPERATION',
  BufferTooSmall: 'ERR_NSM_BUFFER_TOO_SMALL',
  InputTooLarge: 'ERR_NSM_INPUT_TOO_LARGE',
  InternalError: 'ERR_NSM_INTERNAL_ERROR',
};

/** The answer to `DescribeNSM`: module version and id, PCR count and locked PCRs, digest. */
export interface NsmDescription {
  versionMajor: number;
  versionMinor: number;
  versionPatch: number;
  moduleId: string;
  maxPcrs: number;
  lockedPcrs: number[];
  digest: 'SHA256' | 'SHA384' | 'SHA512';
}

/** A Nitro Secure Module session: attestation, PCRs, randomness and the module's description. */
export interface NsmClient {
  /** A signed attestation document (COSE_Sign1) binding the given fields. */
  attestation(request?: { publicKey?: Uint8Array; userData?: Uint8Array; nonce?: Uint8Array }): Promise<Uint8Array>;
  describePcr(index: number): Promise<{ locked: boolean; data: Uint8Array }>;
  /** Extends PCR `index` with `data`; returns the new value. */
  extendPcr(index: number, data: Uint8Array): Promise<Uint8Array>;
  lockPcr(index: number): Promise<void>;
  /** Locks PCRs `[0, range)`. */
  lockPcrs(range: number): Promise<void>;
  describeNsm(): Promise<NsmDescription>;
  /** Entropy from the NSM (256 bytes per call on current hardware). */
  getRandom(): Promise<Uint8Array>;
  close(): Promise<void>;
}

function pcrIndex(index: unknown): number {
  if (!Number.isInteger(index) || (index as number) < 0 || (index as number) > 0xffff) throw new TypeError('PCR index must be an integer 0..65535');
  return index as number;
}

function field(name: string, value: unknown): Uint8Array | null {
  if (value === undefined || value === null) return null;
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (value.length > NSM_FIELD_MAX) throw new NitroEnclaveError('ERR_NSM_INPUT_TOO_LARGE', `${name} is ${value.length} bytes; the NSM accepts at most ${NSM_FIELD_MAX}`);
  return value;
}

const asBytes = (v: unknown, what: string): Uint8Array => {
  if (!(v instanceof Uint8Array)) throw new NitroEnclaveError('ERR_NSM_INVALID_RESPONSE', `NSM response field ${what} is not a byte string`);
  return new Uint8Array(v);
};

/**
 * A client for the Nitro Secure Module: requests are encoded as the NSM's
 * CBOR messages, sent over `transport` (the `/dev/nsm` native helper by
 * default, the test kit's simulated NSM in tests), and the device's
 * `{"Error": "<variant>"}` answers become coded errors.
 *
 * @example
 * ```ts
 * const nsm = await openNsm();
 * const doc = await nsm.attestation({ publicKey: spkiDer, nonce });
 * ```
 */
export function createNsmClient(transport: NsmTransport): NsmClient {
  if (!transport || typeof transport.request !== 'function') throw new TypeError('transport must have a request(bytes) method');

  async function call(request: unknown, expect: string): Promise<Record<string, unknown> | null> {
    const message = cbor.encode(request) as Uint8Array;
    if (message.length > NSM_REQUEST_MAX) throw new NitroEnclaveError('ERR_NSM_INPUT_TOO_LARGE', `NSM request is ${message.length} bytes; the limit is ${NSM_REQUEST_MAX}`);
    const raw = await transport.request(new Uint8Array(message.buffer, message.byteOffset, message.byteLength));
    let response: unknown;
    try {
      response = cbor.decode(raw);
    } catch {
      throw new NitroEnclaveError('ERR_NSM_INVALID_RESPONSE', `NSM answered ${expect} with bytes that are not CBOR`);
    }
    if (typeof response === 'string' && response === expect) return null; // unit variants (LockPCR, LockPCRs)
    if (typeof response === 'object' && response !== null && !(response instanceof Uint8Array)) {
      const entries = Object.entries(response as Record<string, unknown>);
      if (entries.length === 1) {
        const [name, body] = entries[0]!;
        if (name === 'Error') {
          const code = typeof body === 'string' ? ERROR_CODES[body] : undefined;
          throw new NitroEnclaveError(code ?? 'ERR_NSM_INVALID_RESPONSE', `NSM ${expect} failed: ${String(body)}`);
        }
        if (name === expect && typeof body === 'object' && body !== null) return body as Record<string, unknown>;
      }
    }
    throw new NitroEnclaveError('ERR_NSM_INVALID_RESPONSE', `NSM answered ${expect} with an unexpected response`);
  }

  return {
    async attestation(request = {}) {
      const body = {
        user_data: field('userData', request.userData),
        nonce: field('nonce', request.nonce),
        public_key: field('publicKey', request.publicKey),
      };
      const res = await call({ Attestation: body }, 'Attestation');
      return asBytes(res?.document, 'document');
    },
    async describePcr(index) {
      const res = await call({ DescribePCR: { index: pcrIndex(index) } }, 'DescribePCR');
      if (typeof res?.lock !== 'boolean') throw new NitroEnclaveError('ERR_NSM_INVALID_RESPONSE', 'DescribePCR response lacks lock');
      return { locked: res.lock, data: asBytes(res.data, 'data') };
    },
    async extendPcr(index, data) {
      if (!(data instanceof Uint8Array)) throw new TypeError('data must be a Uint8Array');
      const res = await call({ ExtendPCR: { index: pcrIndex(index), data } }, 'ExtendPCR');
      return asBytes(res?.data, 'data');
    },
    async lockPcr(index) {
      await call({ LockPCR: { index: pcrIndex(index) } }, 'LockPCR');
    },
    async lockPcrs(range) {
      await call({ LockPCRs: { range: pcrIndex(range) } }, 'LockPCRs');
    },
    async describeNsm() {
      const r = await call('DescribeNSM', 'DescribeNSM');
      if (!r || typeof r.module_id !== 'string' || !Array.isArray(r.locked_pcrs)) throw new NitroEnclaveError('ERR_NSM_INVALID_RESPONSE', 'DescribeNSM response is incomplete');
      return {
        versionMajor: Number(r.version_major),
        versionMinor: Number(r.version_minor),
        versionPatch: Number(r.version_patch),
        moduleId: r.module_id,
        maxPcrs: Number(r.max_pcrs),
        lockedPcrs: (r.locked_pcrs as unknown[]).map(Number),
        digest: r.digest as NsmDescription['digest'],
      };
    },
    async getRandom() {
      const res = await call('GetRandom', 'GetRandom');
      return asBytes(res?.random, 'random');
    },
    async close() {
      await transport.close?.();
    },
  };
}
