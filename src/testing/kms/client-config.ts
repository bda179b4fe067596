import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createStreamHttpsAgent, tcpConnector, type StreamConnector } from '../../vsock/agent.js';
import type { KmsSimulator } from './simulator.js';
import type { TestPrincipal } from './sigv4.js';

/**
 * `KMSClient` configuration that reaches the simulator with production-shaped
 * settings: endpoint `https://kms.<region>.amazonaws.com`, SNI and certificate
 * name unchanged, bytes routed to the simulator (or through `connect`, e.g. the
 * vsock-proxy stand-in), and the test CA trusted.
 *
 * @example
 * ```ts
 * const kms = await startKmsSimulator();
 * const admin = new KMSClient(kmsClientConfig(kms, kms.principal('user/admin')));
 * ```
 */
export function kmsClientConfig(sim: KmsSimulator, principal: TestPrincipal, connect?: StreamConnector) {
  const agent = createStreamHttpsAgent({ connect: connect ?? tcpConnector(sim.port), servername: sim.hostname, ca: sim.caPem });
  return {
    region: sim.region,
    endpoint: `https://${sim.hostname}`,
    credentials: { accessKeyId: principal.accessKeyId, secretAccessKey: principal.secretAccessKey, ...(principal.sessionToken ? { sessionToken: principal.sessionToken } : {}) },
    requestHandler: new NodeHttpHandler({ httpsAgent: agent }),
    maxAttempts: 1,
  };
}
