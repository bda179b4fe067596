import { Socket } from 'node:net';
import { NitroEnclaveError } from '../errors.js';
import { loadNative, type NativeStream, type SocketAddress } from '../internal/native.js';

export type { SocketAddress };

/** The parent instance's CID as seen from an enclave. */
export const VMADDR_CID_PARENT = 3;
/** Bind to every CID (listeners). */
export const VMADDR_CID_ANY = 0xffffffff;

/** Options of {@link connectVsock} and {@link connectSocket}: timeout and cancellation. */
export interface ConnectOptions {
  /** Milliseconds to wait for the connection. Default 5000; 0 waits forever. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Keep the writable side open after the peer ends (default false, like `net.connect`). */
  allowHalfOpen?: boolean;
}

/**
 * A connected stream: a `net.Socket` over the relay, plus the peer's vsock address when known.
 * `end()` passes a half-close on (the peer can still answer), `destroy()` closes, and
 * `resetAndDestroy()` aborts: a RST on TCP; vsock and AF_UNIX have no reset on the wire, so there
 * both directions are shut at once.
 */
export type VsockSocket = Socket & { readonly peerCid?: number; readonly peerPort?: number };

const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 13: 'EACCES', 19: 'ENODEV', 22: 'EINVAL', 97: 'EAFNOSUPPORT', 104: 'ECONNRESET', 110: 'ETIMEDOUT', 111: 'ECONNREFUSED', 113: 'EHOSTUNREACH', 32: 'EPIPE' };

function describe(address: SocketAddress): string {
  if (address.family === 'vsock') return `vsock ${address.cid}:${address.port}`;
  if (address.family === 'unix') return `unix ${address.path}`;
  return `tcp ${address.host}:${address.port}`;
}

function hint(address: SocketAddress): string {
  return address.family === 'vsock' && address.cid === VMADDR_CID_PARENT
    ? ` Is vsock-proxy running on the parent instance (e.g. \`vsock-proxy ${address.port} kms.<region>.amazonaws.com 443\`)?`
    : '';
}

/** The longest AF_UNIX path, in UTF-8 bytes (sun_path holds 108 with the terminating NUL). */
const UNIX_PATH_MAX = 107;

/** Maps the native helper's refusal of an address: a malformed one is a TypeError, a unix path too long for sun_path a coded error. */
export function addressError(err: unknown, address: SocketAddress): Error {
  if ((err as { code?: string }).code === 'ENAMETOOLONG' && address.family === 'unix') {
    return new NitroEnclaveError('ERR_VSOCK_PATH_TOO_LONG', `unix socket path is ${Buffer.byteLength(address.path)} bytes in UTF-8; at most ${UNIX_PATH_MAX} fit in sun_path`);
  }
  if (err instanceof TypeError) return new TypeError(`invalid address: ${JSON.stringify(address)}`);
  return err as Error;
}

/**
 * Wraps the JavaScript end of the native relay as a net.Socket, turning a relayed reset into an
 * error, and giving it the `resetAndDestroy()` a TCP socket has: the remote connection is aborted,
 * not closed (net.Socket's own method refuses the AF_UNIX socketpair under the relay).
 */
export function adoptStream(stream: NativeStream, address: SocketAddress, allowHalfOpen = false): VsockSocket {
  const native = loadNative();
  const socket = new Socket({ fd: stream.fd, readable: true, writable: true, allowHalfOpen }) as VsockSocket;
  const handle = stream.handle;
  Object.defineProperties(socket, {
    peerCid: { value: stream.peerCid, enumerable: true },
    peerPort: { value: stream.peerPort, enumerable: true },
    // Holds the relay state for as long as the socket lives.
    [Symbol.for('nitro-enclave-sdk.relay')]: { value: handle },
  });
  // At end-of-stream, ask the relay whether the remote side ended cleanly; a reset becomes an error, not an 'end'.
  const push = socket.push.bind(socket);
  socket.push = (chunk: unknown, encoding?: BufferEncoding) => {
    if (chunk === null) {
      const errno = native.relayError(handle);
      if (errno !== 0) {
        socket.destroy(new NitroEnclaveError('ERR_VSOCK_RESET', `${describe(address)}: connection lost (${ERRNO_NAMES[errno] ?? `errno ${errno}`})`));
        return false;
      }
    }
    return push(chunk, encoding);
  };
  // An abort must never reach the remote as a clean end: the relay resets it before the socketpair
  // closes (its EOF would otherwise be passed on as a half-close).
  socket.resetAndDestroy = () => {
    if (!socket.destroyed) native.relayAbort(handle);
    return socket.destroy();
  };
  return socket;
}

/**
 * Connects to `address` through the native relay and returns a real
 * `net.Socket` (a `stream.Duplex` with backpressure and half-close). The
 * address family is data, so the same code path serves vsock in an enclave
 * and AF_UNIX or loopback TCP in tests.
 *
 * @example
 * ```ts
 * const socket = await connectSocket({ family: 'unix', path: '/run/forwarder.sock' }, { timeoutMs: 2000 });
 * socket.end('hello');
 * ```
 */
export async function connectSocket(address: SocketAddress, options: ConnectOptions = {}): Promise<VsockSocket> {
  const timeout = options.timeoutMs ?? 5000;
  if (!Number.isInteger(timeout) || timeout < 0) throw new TypeError('timeoutMs must be a non-negative integer of milliseconds');
  const { signal } = options;
  if (signal?.aborted) throw new NitroEnclaveError('ERR_VSOCK_ABORTED', `connecting to ${describe(address)} was aborted`, { cause: signal.reason });
  const native = loadNative();
  let pending: ReturnType<typeof native.connect>;
  try {
    pending = native.connect(address, timeout);
  } catch (err) {
    throw addressError(err, address);
  }
  const onAbort = () => pending.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let stream: NativeStream;
  try {
    stream = await pending.promise;
  } catch (err) {
    const e = err as Error & { code?: string; errno?: number };
    if (e.code === 'ETIMEDOUT') throw new NitroEnclaveError('ERR_VSOCK_TIMEOUT', `connecting to ${describe(address)} timed out after ${timeout} ms.${hint(address)}`);
    if (e.code === 'ECANCELED') throw new NitroEnclaveError('ERR_VSOCK_ABORTED', `connecting to ${describe(address)} was aborted`, { cause: signal?.reason });
    const name = e.errno ? (ERRNO_NAMES[e.errno] ?? `errno ${e.errno}`) : 'error';
    throw new NitroEnclaveError('ERR_VSOCK_CONNECT', `cannot connect to ${describe(address)}: ${name} (${e.message}).${hint(address)}`);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (signal?.aborted) {
    native.closeFd(stream.fd);
    throw new NitroEnclaveError('ERR_VSOCK_ABORTED', `connecting to ${describe(address)} was aborted`, { cause: signal.reason });
  }
  return adoptStream(stream, address, options.allowHalfOpen);
}

/** The port AWS's `vsock-proxy` usually listens on at the parent: the default KMS route. */
export const VSOCK_PROXY_PORT = 8000;

/**
 * Connects to a vsock port, by default the parent instance (CID 3) on port
 * {@link VSOCK_PROXY_PORT} (8000), where AWS's `vsock-proxy` usually listens.
 *
 * @example
 * ```ts
 * const socket = await connectVsock({ port: 8000, timeoutMs: 2000 });
 * ```
 */
export function connectVsock(options: ConnectOptions & { cid?: number; port?: number } = {}): Promise<VsockSocket> {
  const cid = options.cid ?? VMADDR_CID_PARENT;
  const port = options.port ?? VSOCK_PROXY_PORT;
  if (!Number.isInteger(cid) || cid < 0 || cid > 0xffffffff) throw new TypeError('cid must be an unsigned 32-bit integer');
  if (!Number.isInteger(port) || port < 0 || port > 0xffffffff) throw new TypeError('port must be an unsigned 32-bit integer');
  return connectSocket({ family: 'vsock', cid, port }, options);
}
