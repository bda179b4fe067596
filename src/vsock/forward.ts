import { createServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { NitroEnclaveError } from '../errors.js';
import { loadNative, type NativeBinding } from '../internal/native.js';
import { connectVsock } from './connect.js';

/** The vsock end of a forward: a CID (3 = the parent) and a port. */
export interface VsockTarget {
  cid: number;
  port: number;
}

/** Options of {@link forwardTcpToVsock}: the loopback TCP address to listen on and the vsock (or stand-in) target. */
export interface ForwardTcpToVsockOptions {
  /** Where to accept TCP: default host `127.0.0.1` (an enclave has only loopback). Port 0 picks a free one. */
  listen: { host?: string; port: number };
  /** Where each connection goes, e.g. `{ cid: 3, port: 7233 }` for a `vsock-proxy` on the parent. */
  target: VsockTarget;
  /** Milliseconds to wait for each vsock connection (default 5000). */
  connectTimeoutMs?: number;
  /**
   * Opens the stream to `target`. Default: `connectVsock` with half-close allowed. Tests inject
   * `connectSocket` to an AF_UNIX or loopback peer (same native relay, no AF_VSOCK).
   */
  connect?: (target: VsockTarget) => Promise<Duplex>;
  /** Per-connection failures (coded: ERR_VSOCK_CONNECT, ERR_VSOCK_TIMEOUT, ERR_VSOCK_RESET); the forwarder keeps serving. */
  onError?: (err: NitroEnclaveError) => void;
}

/** A running forwarder ({@link forwardTcpToVsock}). */
export interface TcpToVsockForwarder {
  readonly host: string;
  /** The bound TCP port. */
  readonly port: number;
  /** Connections currently forwarded. */
  readonly connections: number;
  /** Stops accepting and resets the connections still open (both sides). */
  close(): Promise<void>;
}

const u32 = (n: unknown) => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffffffff;

/**
 * Aborts a stream: `resetAndDestroy()` on a TCP socket or a relay socket (vsock) resets the far end;
 * a stream that cannot send a reset (an AF_UNIX net.Socket refuses it, a plain Duplex has none) is
 * destroyed.
 */
function abort(stream: Duplex): void {
  const reset = (stream as Partial<Socket>).resetAndDestroy;
  if (typeof reset === 'function') {
    try {
      reset.call(stream);
      return;
    } catch {
      // ERR_INVALID_HANDLE_TYPE: not a TCP handle
    }
  }
  stream.destroy();
}

/**
 * Whether a client whose socket reported 'end' reset the connection. libuv (Node 20: 1.46) turns
 * bytes and a RST that arrive in one poll wake-up into a clean EOF without reading the error
 * (the POLLHUP short-cut after a partial read, reworked upstream in libuv#4997); the kernel still
 * holds it, so ask. A socket without a descriptor cannot be asked and counts as reset: an abort
 * must not be passed on as a clean end.
 */
function endedByReset(native: NativeBinding, client: Socket): boolean {
  const fd = (client as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd !== 'number' || fd < 0 || native.socketError(fd) !== 0;
}

function coded(err: unknown, target: VsockTarget): NitroEnclaveError {
  if (err instanceof NitroEnclaveError) return err;
  return new NitroEnclaveError('ERR_VSOCK_CONNECT', `cannot connect to vsock ${target.cid}:${target.port}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/**
 * Accepts TCP connections on the enclave's loopback and relays each one to a vsock port, for
 * clients that only take `host:port` (the Temporal worker's native connection, gRPC clients).
 * Bytes flow with backpressure both ways (a slow reader on either side slows the writer), a
 * half-close travels across (the other direction keeps flowing), and an abort on one side aborts
 * the other, also when the last bytes and the reset arrive together: a client's TCP reset resets
 * the vsock side, a reset the relay reads from the target resets the client (`ERR_VSOCK_RESET`).
 * Bytes still queued in the forwarder when a reset comes are dropped, not flushed: the sender did
 * not finish, so no tail makes the stream whole. vsock itself has no reset (an abort there shuts
 * both directions at once), and the parent relays every byte, so it can end a stream cleanly at any
 * point: completeness comes from the protocol inside (TLS close_notify, HTTP/2 and gRPC framing).
 * TLS (e.g. to Temporal Cloud) stays end to end: the parent's `vsock-proxy` sees only ciphertext.
 * Needs the native helper (`ERR_NATIVE_UNAVAILABLE` without it), also with an injected `connect`:
 * it is what tells a client's reset from its clean end.
 *
 * @example
 * ```ts
 * // parent: vsock-proxy 7233 my-ns.a1b2c.tmprl.cloud 7233
 * const forwarder = await forwardTcpToVsock({ listen: { port: 7233 }, target: { cid: 3, port: 7233 } });
 * const connection = await NativeConnection.connect({ address: `127.0.0.1:${forwarder.port}`, tls: { serverNameOverride: 'my-ns.a1b2c.tmprl.cloud', clientCertPair } });
 * ```
 */
export async function forwardTcpToVsock(options: ForwardTcpToVsockOptions): Promise<TcpToVsockForwarder> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options are required');
  const { listen, target, connectTimeoutMs = 5000, onError } = options;
  const host = listen?.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0) throw new TypeError('listen.host must be a host name or address');
  if (!Number.isInteger(listen?.port) || listen.port < 0 || listen.port > 65535) throw new TypeError('listen.port must be a TCP port (0 picks one)');
  if (!u32(target?.cid) || !u32(target?.port)) throw new TypeError('target.cid and target.port must be unsigned 32-bit integers');
  if (!Number.isInteger(connectTimeoutMs) || connectTimeoutMs < 0) throw new TypeError('connectTimeoutMs must be a non-negative integer');
  if (options.connect !== undefined && typeof options.connect !== 'function') throw new TypeError('connect must be a function returning a Promise<Duplex>');
  if (onError !== undefined && typeof onError !== 'function') throw new TypeError('onError must be a function');
  const open: (t: VsockTarget) => Promise<Duplex> = options.connect ?? ((t: VsockTarget) => connectVsock({ cid: t.cid, port: t.port, timeoutMs: connectTimeoutMs, allowHalfOpen: true }));
  const report = (err: NitroEnclaveError) => {
    try {
      onError?.(err);
    } catch {
      // a throwing observer must not take the forwarder down
    }
  };
  const native = loadNative(); // endedByReset asks it; the default connector needs it anyway
  const live = new Set<{ client: Socket; upstream?: Duplex }>();

  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    const pair: { client: Socket; upstream?: Duplex } = { client };
    live.add(pair);
    client.once('close', () => live.delete(pair));
    client.on('error', () => pair.upstream && abort(pair.upstream)); // the local peer reset: reset the vsock side too
    Promise.resolve()
      .then(() => open(target))
      .then(
        (upstream) => {
          if (client.destroyed) return void abort(upstream);
          pair.upstream = upstream;
          upstream.on('error', (err: Error & { code?: string }) => {
            report(err instanceof NitroEnclaveError ? err : new NitroEnclaveError('ERR_VSOCK_RESET', `vsock ${target.cid}:${target.port}: connection lost (${err.code ?? err.message})`, { cause: err }));
            client.resetAndDestroy();
          });
          upstream.once('close', () => {
            // the vsock side is gone: if it never ended cleanly, the client must not see a clean end
            if (!upstream.readableEnded && !client.destroyed) client.resetAndDestroy();
          });
          client.once('close', () => upstream.destroy());
          // pipe() waits for 'drain' (backpressure); upstream.pipe(client) also ends the client when the
          // vsock side ends (half-close). The client's end is passed on here, as a half-close only if
          // it was one: an abort resets the vsock side and drops what is still queued there.
          client.pipe(upstream, { end: false });
          client.once('end', () => (endedByReset(native, client) ? abort(upstream) : upstream.end()));
          upstream.pipe(client);
          client.resume();
        },
        (err: unknown) => {
          report(coded(err, target));
          client.resetAndDestroy();
        },
      );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: Error & { code?: string }) => reject(new NitroEnclaveError('ERR_VSOCK_LISTEN', `cannot listen on tcp ${host}:${listen.port}: ${err.code ?? err.message}`, { cause: err })));
    server.listen(listen.port, host, () => resolve());
  });
  server.on('error', () => {}); // after listening, accept errors are per connection
  const port = (server.address() as { port: number }).port;
  return {
    host,
    port,
    get connections() {
      return live.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const { client, upstream } of live) {
          if (upstream) abort(upstream);
          client.resetAndDestroy();
        }
      }),
  };
}
