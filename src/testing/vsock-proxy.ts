import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

/** Options of {@link startVsockProxyStandIn}: where to listen (AF_UNIX or TCP) and where to forward. */
export interface ProxyStandInOptions {
  /** Where the enclave side connects: an AF_UNIX path, or a loopback TCP port (0 = ephemeral). */
  listen: { path: string } | { port: number; host?: string };
  /** Where bytes go: the KMS simulator's loopback port (in production, vsock-proxy's remote). */
  target: { port: number; host?: string };
}

/** A running vsock-proxy stand-in ({@link startVsockProxyStandIn}). */
export interface ProxyStandIn {
  /** `{ path }` or `{ port, host }` as listening. */
  readonly address: { path: string } | { port: number; host: string };
  /** Connections relayed so far. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * A stand-in for AWS's `vsock-proxy` on the parent instance: it accepts
 * stream connections and relays the bytes, untouched, to one fixed target.
 * TLS passes through end to end, exactly as with the real proxy.
 *
 * @example
 * ```ts
 * const proxy = await startVsockProxyStandIn({ listen: { path: '/tmp/proxy.sock' }, target: { port: kms.port } });
 * const transport = { kind: 'custom', connect: () => connectSocket({ family: 'unix', path: '/tmp/proxy.sock' }) } as const;
 * ```
 */
export async function startVsockProxyStandIn(options: ProxyStandInOptions): Promise<ProxyStandIn> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((inbound) => {
    connections++;
    const outbound = connect({ port: options.target.port, host: options.target.host ?? '127.0.0.1' });
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if ('path' in options.listen) server.listen(options.listen.path, resolve);
    else server.listen(options.listen.port, options.listen.host ?? '127.0.0.1', resolve);
  });
  const addr = server.address();
  return {
    address: typeof addr === 'string' ? { path: addr } : { port: (addr as AddressInfo).port, host: (addr as AddressInfo).address },
    get connections() {
      return connections;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
