import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { Agent } from 'node:https';
import { connectVsock, VMADDR_CID_PARENT, VSOCK_PROXY_PORT } from '../vsock/connect.js';
import { createStreamHttpsAgent, tcpConnector, type StreamConnector } from '../vsock/agent.js';

/** An AWS region name such as `us-east-1` or `us-gov-west-1` (shape only; the endpoint decides). */
export const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;

/** Options of {@link createKmsAgent} and {@link createKmsRequestHandler}: how to reach KMS (vsock-proxy port, region, TLS). */
export interface KmsTransportOptions {
  region: string;
  /** Where the parent's vsock-proxy listens. Default CID 3, port 8000. */
  vsock?: { cid?: number; port?: number };
  /** Instead of vsock: a TCP port on loopback where a TCP-to-vsock forwarder listens. */
  tcp?: { port: number; host?: string };
  /** Instead of either: any stream connector. */
  connect?: StreamConnector;
  /** Connect timeout per connection, in milliseconds. Default 5000. */
  connectTimeoutMs?: number;
  /** Extra trusted CAs (tests only). */
  ca?: string | string[];
}

function connectorOf(options: KmsTransportOptions): StreamConnector {
  if (options.connect) return options.connect;
  if (options.tcp) return tcpConnector(options.tcp.port, options.tcp.host);
  const timeoutMs = options.connectTimeoutMs ?? 5000;
  return () => connectVsock({ cid: options.vsock?.cid ?? VMADDR_CID_PARENT, port: options.vsock?.port ?? VSOCK_PROXY_PORT, timeoutMs });
}

/**
 * An `https.Agent` that reaches `kms.<region>.amazonaws.com` through the parent's vsock-proxy (or a TCP forwarder).
 *
 * @example
 * ```ts
 * const agent = createKmsAgent({ region: 'eu-west-1', vsock: { port: 8000 } });
 * ```
 */
export function createKmsAgent(options: KmsTransportOptions): Agent {
  if (typeof options?.region !== 'string' || !AWS_REGION.test(options.region)) throw new TypeError('region must be an AWS region like us-east-1');
  return createStreamHttpsAgent({ connect: connectorOf(options), servername: `kms.${options.region}.amazonaws.com`, ...(options.ca ? { ca: options.ca } : {}) });
}

/**
 * A smithy `RequestHandler` for `new KMSClient({ requestHandler })`: each
 * connection runs TLS to `kms.<region>.amazonaws.com` over vsock.
 *
 * @example
 * ```ts
 * const kms = new KMSClient({ region: 'us-east-1', requestHandler: createKmsRequestHandler({ region: 'us-east-1' }) });
 * ```
 */
export function createKmsRequestHandler(options: KmsTransportOptions & { /** Per-request timeout, in milliseconds. Default 10000. */ requestTimeoutMs?: number }): NodeHttpHandler {
  return new NodeHttpHandler({ httpsAgent: createKmsAgent(options), requestTimeout: options.requestTimeoutMs ?? 10_000, connectionTimeout: options.connectTimeoutMs ?? 5000 });
}

