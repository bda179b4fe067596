// A child process that runs the KMS simulator and the vsock-proxy stand-in, so the bench can measure
// the enclave side with KMS's work off its CPU, as it is in production (KMS is a remote service).
// Started by bench/tsk.mjs with fork(); the trust anchor comes in, the connection facts go out.
import { startKmsSimulator, startVsockProxyStandIn } from '../dist/testing/index.js';

process.once('message', async ({ trustAnchor, proxyPath }) => {
  const sim = await startKmsSimulator({ trustAnchors: [new Uint8Array(trustAnchor)] });
  const proxy = await startVsockProxyStandIn({ listen: { path: proxyPath }, target: { port: sim.port } });
  const principal = (name) => {
    const p = sim.principal(name);
    return { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey, sessionToken: p.sessionToken, arn: p.arn };
  };
  process.send({ region: sim.region, regions: sim.regions, accountId: sim.accountId, port: sim.port, hostname: sim.hostname, caPem: sim.caPem, admin: principal('user/admin'), role: principal('EnclaveInstanceRole') });
  process.once('message', async () => {
    await proxy.close();
    await sim.close();
    process.exit(0);
  });
});
