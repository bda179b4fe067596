#!/usr/bin/env node
// Entry point inside the enclave image. Configuration comes from the environment (baked into the image).
import { startEnclave } from './app.mjs';
import { forwardLoopbackToParent } from './temporal-forwarder.mjs';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const env = process.env;
const enclave = await startEnclave({
  region: env.AWS_REGION ?? 'us-east-1',
  // Baked into the image by the Dockerfile (ARG/ENV TSK_KEY_ARN), so PCR0 measures it.
  keyId: env.TSK_KEY_ARN,
  transport: { kind: 'vsock', cid: 3, port: Number(env.KMS_PROXY_PORT ?? 8000) },
  credentialsAddress: { family: 'vsock', cid: 3, port: Number(env.CREDENTIALS_PORT ?? 8002) },
  listen: { family: 'vsock', cid: 0xffffffff, port: Number(env.AGENTS_PORT ?? 5000) },
}).catch((err) => {
  // One line with the code; messages never contain key material or plaintext.
  console.error(`confidential-workflow: ${err.code ?? err.name}: ${err.message}`);
  process.exit(1);
});
// The starter (enclave/starter.mjs) reaches Temporal through this loopback port and the parent's
// vsock-proxy 7233. Start workflows from here with runConfidentialWorkflow() when the enclave itself
// originates the work.
const forwarder = await forwardLoopbackToParent({ port: 7233, parent: { family: 'vsock', cid: 3, port: Number(env.TEMPORAL_PROXY_PORT ?? 7233) } });
console.log(`confidential-workflow: TSK released to PCR0 ${enclave.tsk.metadata.pcr0.slice(0, 16)}…; agents on vsock ${env.AGENTS_PORT ?? 5000}; Temporal via ${forwarder.address}`);
for (const signal of ['SIGINT', 'SIGTERM'])
  process.once(signal, async () => {
    await forwarder.close();
    await enclave.close();
  });
