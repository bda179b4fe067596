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
 * // another region the simulator serves (startKmsSimulator({ regions: ['eu-west-1'] })):
 * const euAdmin = new KMSClient(kmsClientConfig(kms, kms.principal('user/admin'), undefined, 'eu-west-1'));
 * ```
 */
export function kmsClientConfig(sim: KmsSimulator, principal: TestPrincipal, connect?: StreamConnector, region: string = sim.region) {
  if (!sim.regions.includes(region)) throw new TypeError(`the simulator does not serve ${region} (options.regions)`);
  const hostname = `kms.${region}.amazonaws.com`;
  const agent = createStreamHttpsAgent({ connect: connect ?? tcpConnector(sim.port), servername: hostname, ca: sim.caPem });
  return {
    region,
    endpoint: `https://${hostname}`,
    credentials: { accessKeyId: principal.accessKeyId, secretAccessKey: principal.secretAccessKey, ...(principal.sessionToken ? { sessionToken: principal.sessionToken } : {}) },
    requestHandler: new NodeHttpHandler({ httpsAgent: agent }),
    maxAttempts: 1,
  };
}
