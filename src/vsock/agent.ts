import { Agent, type AgentOptions } from 'node:https';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';

/** Opens the raw byte stream to the parent (vsock, TCP, AF_UNIX…). */
export type StreamConnector = () => Promise<Duplex> | Duplex;

/** Options of {@link createStreamHttpsAgent}: the byte-stream connector and TLS settings. */
export interface StreamAgentOptions {
  /** Opens one raw stream; TLS then runs end to end over it. */
  connect: StreamConnector;
  /** The TLS server name (SNI) and the name the certificate must carry, e.g. `kms.us-east-1.amazonaws.com`. */
  servername: string;
  /** Extra trusted CAs (PEM). Only for tests against the simulator; production uses the system store. */
  ca?: string | string[];
  keepAlive?: boolean;
  maxSockets?: number;
}

/**
 * An `https.Agent` whose connections run over a caller-supplied byte stream:
 * the request goes to `https://kms.<region>.amazonaws.com` (Host header and
 * SNI unchanged, certificate checked against that name), but the bytes flow
 * through vsock to the parent's `vsock-proxy`, which relays them to KMS.
 * TLS is end to end; the proxy sees only ciphertext.
 *
 * @example
 * ```ts
 * const agent = createStreamHttpsAgent({ connect: () => connectVsock({ port: 8000 }), servername: 'kms.us-east-1.amazonaws.com' });
 * const kms = new KMSClient({ region: 'us-east-1', requestHandler: new NodeHttpHandler({ httpsAgent: agent }) });
 * ```
 */
export function createStreamHttpsAgent(options: StreamAgentOptions): Agent {
  if (typeof options?.connect !== 'function') throw new TypeError('connect must be a function returning a Duplex');
  if (typeof options.servername !== 'string' || options.servername.length === 0) throw new TypeError('servername is required');
  const agentOptions: AgentOptions = { keepAlive: options.keepAlive ?? true, maxSockets: options.maxSockets ?? 16 };
  const agent = new Agent(agentOptions);
  type Callback = (err: Error | null, socket?: Duplex) => void;
  (agent as unknown as { createConnection: (opts: ConnectionOptions, cb: Callback) => undefined }).createConnection = (_opts, cb) => {
    Promise.resolve()
      .then(() => options.connect())
      .then(
        (raw) => {
          const tls = tlsConnect({ socket: raw, servername: options.servername, ...(options.ca ? { ca: options.ca } : {}), ALPNProtocols: ['http/1.1'] });
          raw.once('error', (err) => tls.destroy(err));
          tls.once('close', () => raw.destroy());
          cb(null, tls);
        },
        (err: Error) => cb(err),
      );
    return undefined;
  };
  return agent;
}

/**
 * A connector for a TCP port (e.g. a TCP-to-vsock forwarder on the enclave's loopback).
 *
 * @example
 * ```ts
 * const agent = createStreamHttpsAgent({ connect: tcpConnector(8000), servername: 'kms.us-east-1.amazonaws.com' });
 * ```
 */
export function tcpConnector(port: number, host = '127.0.0.1'): StreamConnector {
  return () => connected(netConnect({ port, host }));
}

/**
 * A connector for an AF_UNIX socket path.
 *
 * @example
 * ```ts
 * const agent = createStreamHttpsAgent({ connect: unixConnector('/run/kms.sock'), servername: 'kms.us-east-1.amazonaws.com' });
 * ```
 */
export function unixConnector(path: string): StreamConnector {
  return () => connected(netConnect({ path }));
}

function connected(socket: ReturnType<typeof netConnect>): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
