import { NitroEnclaveError } from '../errors.js';
import { loadNative, type SocketAddress } from '../internal/native.js';
import { addressError, adoptStream, VMADDR_CID_ANY, type VsockSocket } from './connect.js';

/** A listening socket from {@link listenVsock} or {@link listenSocket}. */
export interface StreamListener {
  /** The bound port (vsock or TCP; 0 for AF_UNIX). */
  readonly port: number;
  close(): void;
}

/** Options of {@link listenSocket} and {@link listenVsock}. */
export interface ListenOptions {
  backlog?: number;
  /**
   * Accept only vsock peers with one of these CIDs. The check runs in the accept thread on the
   * address `accept()` reports, before any relay starts or any byte is read; a refused connection
   * is closed and reported to `onError` as `ERR_VSOCK_PEER_REFUSED`. Fails closed: a peer without
   * a vsock CID (AF_UNIX, TCP) is refused too. Default: every peer.
   */
  allowedCids?: readonly number[];
  /** Accept failures (`ERR_VSOCK_LISTEN`, reported once per run of failures while the listener backs off) and refusals. */
  onError?: (err: Error) => void;
}

function checkCids(cids: readonly number[] | undefined): number[] | undefined {
  if (cids === undefined) return undefined;
  if (!Array.isArray(cids) || cids.length === 0 || !cids.every((c) => Number.isInteger(c) && c >= 0 && c <= 0xffffffff)) {
    throw new TypeError('allowedCids must be a non-empty array of unsigned 32-bit integers');
  }
  return [...cids];
}

/**
 * Listens on `address` (vsock on the parent or in the enclave; AF_UNIX or
 * loopback TCP in tests). Each accepted connection is relayed like
 * `connectSocket` and handed over as a `net.Socket` with `peerCid` set for vsock.
 * Accepting runs on a dedicated thread, never on libuv's pool; when `accept()`
 * fails (out of descriptors: EMFILE/ENFILE) it backs off from 10 ms up to 1 s
 * instead of spinning, and resumes once descriptors are free.
 *
 * An AF_UNIX path whose socket file a killed process left behind (nobody
 * listens: a connect to it is refused) is replaced, so a restarted server
 * listens where the old one did. A path held by a live listener (even one with
 * a full backlog), or by anything that is not a socket, is never removed: that
 * fails `ERR_VSOCK_LISTEN` (Address already in use). A socket another process has
 * bound but not yet put in listening state is refused like a stale one: start one
 * server per path. vsock ports leave no file behind.
 *
 * @example
 * ```ts
 * const listener = listenSocket({ family: 'vsock', cid: VMADDR_CID_ANY, port: 5000 }, (socket) => socket.pipe(socket), { allowedCids: [16] });
 * // later: listener.close();
 * ```
 */
export function listenSocket(address: SocketAddress, onConnection: (socket: VsockSocket) => void, options: ListenOptions = {}): StreamListener {
  if (typeof onConnection !== 'function') throw new TypeError('onConnection must be a function');
  const allowedCids = checkCids(options.allowedCids);
  const native = loadNative();
  let handle: ReturnType<typeof native.listen>;
  try {
    handle = native.listen(
      address,
      options.backlog ?? 128,
      (err, stream) => {
        if (err?.code === 'EPEERREFUSED') {
          const who = err.peerCid === undefined ? 'a peer without a vsock CID' : `CID ${err.peerCid}`;
          options.onError?.(new NitroEnclaveError('ERR_VSOCK_PEER_REFUSED', `refused a connection from ${who}: allowed CIDs are ${allowedCids!.join(', ')}`));
          return;
        }
        if (err || !stream) {
          options.onError?.(new NitroEnclaveError('ERR_VSOCK_LISTEN', `accept failed: ${err?.message ?? 'unknown error'}; retrying with backoff`));
          return;
        }
        onConnection(adoptStream(stream, address));
      },
      allowedCids,
    );
  } catch (err) {
    if (err instanceof TypeError || (err as { code?: string }).code === 'ENAMETOOLONG') throw addressError(err, address);
    if (err instanceof NitroEnclaveError) throw err;
    throw new NitroEnclaveError('ERR_VSOCK_LISTEN', `cannot listen on ${JSON.stringify(address)}: ${(err as Error).message}`);
  }
  return { port: handle.port, close: () => handle.close() };
}

/**
 * Listens on a vsock port (any CID by default): for parent-side servers and enclave services.
 *
 * @example
 * ```ts
 * const listener = listenVsock({ port: 5000, allowedCids: [16] }, (socket) => {
 *   socket.end('hello enclave'); // only CID 16 gets here
 * });
 * ```
 */
export function listenVsock(options: ListenOptions & { port: number; cid?: number }, onConnection: (socket: VsockSocket) => void): StreamListener {
  return listenSocket({ family: 'vsock', cid: options.cid ?? VMADDR_CID_ANY, port: options.port }, onConnection, options);
}
