import { createHash, randomBytes } from 'node:crypto';
import { Encoder } from 'cbor-x';
import { NSM_REQUEST_MAX, NSM_RESPONSE_MAX, type NsmTransport } from '../nsm/transport.js';
import type { SimulatedEnclave } from './enclave.js';

const cbor = new Encoder({ tagUint8Array: false, useRecords: false, mapsAsObjects: true, variableMapSize: true });

const MAX_PCRS = 32;
const FIELD_MAX = 1024;

/** A simulated NSM: the device's CBOR protocol over the same transport seam as `/dev/nsm`. */
export interface SimulatedNsm extends NsmTransport {
  readonly enclave: SimulatedEnclave;
  /** Every request decoded, for assertions. */
  readonly requests: unknown[];
  /** Makes the next response raw bytes (e.g. malformed CBOR) for error-path tests. */
  injectRawResponse(bytes: Uint8Array): void;
  /** Handles one request synchronously (used by the LD_PRELOAD device shim). */
  handle(message: Uint8Array): Uint8Array;
}

/**
 * Creates a simulated Nitro Secure Module for `enclave`: PCRs 0..15 are the
 * image measurements, locked at boot; 16..31 start at zero and can be
 * extended (SHA-384) and locked; attestation documents come from the
 * enclave's test PKI. Errors are the device's variants (`InvalidArgument`,
 * `InvalidIndex`, `ReadOnlyIndex`, `InputTooLarge`, `InvalidOperation`).
 *
 * @example
 * ```ts
 * const nsm = openNsm({ transport: createSimulatedNsm(createSimulatedEnclave()) });
 * const doc = await nsm.attestation({ nonce });
 * ```
 */
export function createSimulatedNsm(enclave: SimulatedEnclave): SimulatedNsm {
  const locked = new Set<number>(Array.from({ length: 16 }, (_, i) => i));
  for (let i = 0; i < MAX_PCRS; i++) if (!enclave.pcrs.has(i)) enclave.pcrs.set(i, new Uint8Array(48));
  const requests: unknown[] = [];
  let injected: Uint8Array | null = null;

  const error = (variant: string) => ({ Error: variant });
  const bytesOrNull = (v: unknown): Uint8Array | null | 'bad' => (v === null || v === undefined ? null : v instanceof Uint8Array ? v : 'bad');

  function dispatch(request: unknown): unknown {
    if (request === 'DescribeNSM') {
      return {
        DescribeNSM: { version_major: 1, version_minor: 0, version_patch: 0, module_id: enclave.moduleId, max_pcrs: MAX_PCRS, locked_pcrs: [...locked].sort((a, b) => a - b), digest: 'SHA384' },
      };
    }
    if (request === 'GetRandom') return { GetRandom: { random: randomBytes(256) } };
    if (typeof request !== 'object' || request === null) return error('InvalidOperation');
    const [[name, body] = []] = Object.entries(request as Record<string, Record<string, unknown>>);
    const index = body?.index as number;
    const validIndex = Number.isInteger(index) && index >= 0 && index < MAX_PCRS;
    switch (name) {
      case 'DescribePCR':
        if (!validIndex) return error('InvalidIndex');
        return { DescribePCR: { lock: locked.has(index), data: enclave.pcrs.get(index)! } };
      case 'ExtendPCR': {
        if (!validIndex) return error('InvalidIndex');
        if (locked.has(index)) return error('ReadOnlyIndex');
        if (!(body?.data instanceof Uint8Array)) return error('InvalidArgument');
        const next = new Uint8Array(createHash('sha384').update(enclave.pcrs.get(index)!).update(body.data).digest());
        enclave.pcrs.set(index, next);
        return { ExtendPCR: { data: next } };
      }
      case 'LockPCR':
        if (!validIndex) return error('InvalidIndex');
        locked.add(index);
        return 'LockPCR';
      case 'LockPCRs': {
        const range = body?.range as number;
        if (!Number.isInteger(range) || range < 0 || range > MAX_PCRS) return error('InvalidIndex');
        for (let i = 0; i < range; i++) locked.add(i);
        return 'LockPCRs';
      }
      case 'Attestation': {
        const fields = [bytesOrNull(body?.user_data), bytesOrNull(body?.nonce), bytesOrNull(body?.public_key)];
        if (fields.includes('bad')) return error('InvalidArgument');
        if (fields.some((f) => f instanceof Uint8Array && f.length > FIELD_MAX)) return error('InputTooLarge');
        const [userData, nonce, publicKey] = fields as Array<Uint8Array | null>;
        return { Attestation: { document: enclave.attest({ userData, nonce, publicKey }) } };
      }
      default:
        return error('InvalidOperation');
    }
  }

  function handle(message: Uint8Array): Uint8Array {
    if (injected) {
      const out = injected;
      injected = null;
      return out;
    }
    if (message.length > NSM_REQUEST_MAX) return cbor.encode(error('InputTooLarge')) as Uint8Array;
    let request: unknown;
    try {
      request = cbor.decode(message);
    } catch {
      return cbor.encode(error('InvalidArgument')) as Uint8Array;
    }
    requests.push(request);
    const out = cbor.encode(dispatch(request)) as Uint8Array;
    return out.length > NSM_RESPONSE_MAX ? (cbor.encode(error('BufferTooSmall')) as Uint8Array) : new Uint8Array(out);
  }

  return {
    enclave,
    requests,
    injectRawResponse(bytes) {
      injected = bytes;
    },
    handle,
    async request(message) {
      return handle(message);
    },
  };
}
