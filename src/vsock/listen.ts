import { NitroEnclaveError } from '../errors.js';
import { loadNative, type SocketAddress } from '../internal/native.js';
import { adoptStream, VMADDR_CID_ANY, type VsockSocket } from './connect.js';

/** A listening socket from {@link listenVsock} or {@link listenSocket}. */
export interface StreamListener {
  /** The bound port (vsock or TCP; 0 for AF_UNIX). */
  readonly port: number;
  close(): void;
}

/**
 * Listens on `address` (vsock on the parent or in the enclave; AF_UNIX or
 * loopback TCP in tests). Each accepted connection is relayed like
 * `connectSocket` and handed over as a `net.Socket` with `peerCid` set for vsock.
 * Accepting runs on a dedicated thread, never on libuv's pool.
 *
 * @example
 * ```ts
 * const listener = listenSocket({ family: 'vsock', cid: VMADDR_CID_ANY, port: 5000 }, (socket) => socket.pipe(socket));
 * // later: listener.close();
 * ```
 */
export function listenSocket(address: SocketAddress, onConnection: (socket: VsockSocket) => void, options: { backlog?: number; onError?: (err: Error) => void } = {}): StreamListener {
  if (typeof onConnection !== 'function') throw new TypeError('onConnection must be a function');
  const native = loadNative();
  let handle: ReturnType<typeof native.listen>;
  try {
    handle = native.listen(address, options.backlog ?? 128, (err, stream) => {
      if (err || !stream) {
        options.onError?.(new NitroEnclaveError('ERR_VSOCK_LISTEN', `accept failed: ${err?.message ?? 'unknown error'}`));
        return;
      }
      onConnection(adoptStream(stream, address));
    });
  } catch (err) {
    if (err instanceof TypeError) throw new TypeError(`invalid address: ${JSON.stringify(address)}`);
    throw new NitroEnclaveError('ERR_VSOCK_LISTEN', `cannot listen on ${JSON.stringify(address)}: ${(err as Error).message}`);
  }
  return { port: handle.port, close: () => handle.close() };
}

/**
 * Listens on a vsock port (any CID by default): for parent-side servers and enclave services.
 *
 * @example
 * ```ts
 * const listener = listenVsock({ port: 5000 }, (socket) => {
 *   if (socket.peerCid !== 16) return socket.destroy();
 *   socket.end('hello enclave');
 * });
 * ```
 */
export function listenVsock(options: { port: number; cid?: number; backlog?: number; onError?: (err: Error) => void }, onConnection: (socket: VsockSocket) => void): StreamListener {
  return listenSocket({ family: 'vsock', cid: options.cid ?? VMADDR_CID_ANY, port: options.port }, onConnection, options);
}
