import { NitroEnclaveError } from '../errors.js';
import { loadNative } from '../internal/native.js';
import { createNsmClient, type NsmClient } from './client.js';
import type { NsmTransport } from './transport.js';

/** Options of the `/dev/nsm` transport: the device path (tests point it at a fake). */
export interface NsmDeviceOptions {
  /** Device path. Default `/dev/nsm`. */
  path?: string;
}

const ERRNO = { ENOENT: 2, EACCES: 13, ENODEV: 19, EMSGSIZE: 90, ENOBUFS: 105 } as const;

/**
 * Opens the NSM device through the native helper. Each request is one
 * `ioctl()` run on libuv's thread pool, so the event loop never blocks.
 *
 * @example
 * ```ts
 * const nsm = createNsmClient(openNsmDevice({ path: '/dev/nsm' }));
 * ```
 */
export function openNsmDevice(options: NsmDeviceOptions = {}): NsmTransport {
  const path = options.path ?? '/dev/nsm';
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('path must be a non-empty string');
  const native = loadNative();
  let fd: number;
  try {
    fd = native.nsmOpen(path);
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    const hint = errno === ERRNO.ENOENT || errno === ERRNO.ENODEV ? ' (is this process running inside a Nitro Enclave?)' : '';
    throw new NitroEnclaveError('ERR_NSM_DEVICE_UNAVAILABLE', `cannot open ${path}: ${(err as Error).message}${hint}`);
  }
  // An ioctl runs on libuv's pool with the fd *number*: closing it while a call is queued or running
  // would free the number for the next open(), and the ioctl could land on that file. So close()
  // refuses new requests at once and closes the fd when the last request in flight has returned.
  let open = true;
  let inFlight = 0;
  let closed: Promise<void> | undefined;
  let onIdle: (() => void) | undefined;
  const closeNow = () => {
    native.closeFd(fd);
    onIdle?.();
  };
  return {
    async request(message) {
      if (!open) throw new NitroEnclaveError('ERR_NSM_DEVICE_UNAVAILABLE', `${path} is closed`);
      inFlight++;
      try {
        return new Uint8Array(await native.nsmRequest(fd, message));
      } catch (err) {
        const errno = (err as { errno?: number }).errno;
        if (errno === ERRNO.EMSGSIZE) throw new NitroEnclaveError('ERR_NSM_INPUT_TOO_LARGE', 'the NSM rejected the request as too large (EMSGSIZE)');
        if (errno === ERRNO.ENOBUFS) throw new NitroEnclaveError('ERR_NSM_BUFFER_TOO_SMALL', 'the NSM response does not fit the 12 KiB response buffer');
        throw new NitroEnclaveError('ERR_NSM_INTERNAL_ERROR', `NSM ioctl failed: ${(err as Error).message}`);
      } finally {
        if (--inFlight === 0 && !open) closeNow();
      }
    },
    /** Refuses new requests now; resolves once the fd is closed, after the requests in flight have returned. */
    close() {
      if (closed) return closed;
      open = false;
      closed = new Promise<void>((resolve) => (onIdle = resolve));
      if (inFlight === 0) closeNow();
      return closed;
    },
  };
}

/**
 * Opens the Nitro Secure Module: the device by default, or any transport
 * (e.g. the test kit's `createSimulatedNsm(enclave)`).
 *
 * @example
 * ```ts
 * const nsm = openNsm();
 * const random = await nsm.getRandom();
 * await nsm.close();
 * ```
 */
export function openNsm(options: NsmDeviceOptions & { transport?: NsmTransport } = {}): NsmClient {
  return createNsmClient(options.transport ?? openNsmDevice(options));
}
