import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NitroEnclaveError } from '../errors.js';

/** An address as the native helper takes it: the family is data, so tests use AF_UNIX or loopback TCP. */
export type SocketAddress =
  | { family: 'vsock'; cid: number; port: number }
  | { family: 'unix'; path: string }
  | { family: 'inet'; host: string; port: number };

export interface NativeStream {
  fd: number;
  /** Keeps the relay's state alive and answers relayError(). */
  handle: object;
  peerCid?: number;
  peerPort?: number;
}

export interface NativeBinding {
  nsmOpen(path: string): number;
  nsmRequest(fd: number, request: Uint8Array): Promise<Buffer>;
  closeFd(fd: number): void;
  connect(address: SocketAddress, timeoutMs: number): { promise: Promise<NativeStream>; cancel(): void };
  listen(
    address: SocketAddress,
    backlog: number,
    onConnection: (err: (Error & { code?: string; errno?: number; peerCid?: number; peerPort?: number }) | null, stream: NativeStream | null) => void,
    allowedCids?: readonly number[],
  ): { close(): void; port: number };
  relayError(handle: object): number;
  /** Resets the relayed connection (a RST on TCP; both directions shut at once on vsock and AF_UNIX), dropping what is still queued. */
  relayAbort(handle: object): void;
  /** A socket's pending error (getsockopt SO_ERROR, which clears it): an errno, 0 if none. */
  socketError(fd: number): number;
  /** True when the helper found OpenSSL's AES-256-GCM (Node's own) at run time: src/internal/gcm.ts. */
  gcmAvailable(): boolean;
  /** AES-256-GCM of the parts into out[at..] as ciphertext ‖ tag (src/internal/gcm.ts). */
  gcmSeal(key: Uint8Array, iv: Uint8Array, aad: readonly Uint8Array[], parts: readonly Uint8Array[], out: Uint8Array, at: number): void;
  /** Decrypts into `out`; false (and `out` zeroed) when the tag does not authenticate. */
  gcmOpen(key: Uint8Array, iv: Uint8Array, aad: readonly Uint8Array[], ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): boolean;
}

const HOW_TO_BUILD =
  'The native helper (build/Release/nitro_enclave.node) is not built or cannot load. It is built at install time on Linux ' +
  'with python3, make and a C compiler (`npm rebuild nitro-enclave-sdk`; with npm 11, first allow it: ' +
  '`npm install-scripts approve nitro-enclave-sdk`). Everything except the NSM device and vsock works without it.';

let cached: NativeBinding | undefined;

function packageRoot(): string {
  // src/internal or dist/internal → package root
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** Loads the addon on first use (never at import time). Override the path with NITRO_ENCLAVE_NATIVE. */
export function loadNative(): NativeBinding {
  if (cached) return cached;
  const file = process.env.NITRO_ENCLAVE_NATIVE ?? join(packageRoot(), 'build', 'Release', 'nitro_enclave.node');
  if (process.platform !== 'linux') throw new NitroEnclaveError('ERR_NATIVE_UNAVAILABLE', `Nitro Enclaves run Linux; the native helper is not available on ${process.platform}. ${HOW_TO_BUILD}`);
  if (!existsSync(file)) throw new NitroEnclaveError('ERR_NATIVE_UNAVAILABLE', HOW_TO_BUILD);
  let addon: NativeBinding;
  try {
    addon = createRequire(import.meta.url)(file) as NativeBinding;
  } catch (err) {
    throw new NitroEnclaveError('ERR_NATIVE_UNAVAILABLE', `${HOW_TO_BUILD} (load error: ${(err as Error).message})`);
  }
  cached = guarded(addon);
  return cached;
}

/**
 * The addon throws a plain Error with code ERR_NATIVE_INTERNAL when a Node-API call fails (a bug
 * in the helper, or no memory left); it becomes a NitroEnclaveError like every other code.
 */
function guarded(addon: NativeBinding): NativeBinding {
  const wrap =
    <A extends unknown[], R>(fn: (...args: A) => R) =>
    (...args: A): R => {
      try {
        return fn(...args);
      } catch (err) {
        if ((err as { code?: unknown }).code === 'ERR_NATIVE_INTERNAL' && !(err instanceof NitroEnclaveError)) {
          throw new NitroEnclaveError('ERR_NATIVE_INTERNAL', `native helper: ${(err as Error).message}`);
        }
        throw err;
      }
    };
  return {
    nsmOpen: wrap(addon.nsmOpen),
    nsmRequest: wrap(addon.nsmRequest),
    closeFd: wrap(addon.closeFd),
    connect: wrap(addon.connect),
    listen: wrap(addon.listen),
    relayError: wrap(addon.relayError),
    relayAbort: wrap(addon.relayAbort),
    socketError: wrap(addon.socketError),
    gcmAvailable: addon.gcmAvailable ?? (() => false),
    gcmSeal: wrap(addon.gcmSeal),
    gcmOpen: wrap(addon.gcmOpen),
  };
}
