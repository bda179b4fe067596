#!/usr/bin/env node
// Entry point inside the enclave image. Configuration comes from the environment.
import { startApp } from './app.mjs';

const env = process.env;
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const app = await startApp({
  region: env.AWS_REGION ?? env.TSK_KEY_ARN?.split(':')[3], // the key's region, from its ARN
  ...(env.TSK_CIPHERTEXT_PATH ? { ciphertextBlobPath: env.TSK_CIPHERTEXT_PATH } : {}), // default: fetched from the parent
  // Baked into the image by the Dockerfile (ARG/ENV TSK_KEY_ARN), so PCR0 measures it: the enclave never
  // takes the key's name from the parent. An alias ARN can be fixed before the key exists.
  keyId: env.TSK_KEY_ARN,
  transport: { kind: 'vsock', cid: 3, port: Number(env.KMS_PROXY_PORT ?? 8000) },
  credentialsAddress: { family: 'vsock', cid: 3, port: Number(env.CREDENTIALS_PORT ?? 8002) },
  listen: { family: 'vsock', cid: 0xffffffff, port: Number(env.APP_PORT ?? 5000) },
  log: (line) => console.log(line),
}).catch((err) => {
  // One line with the code; the message never contains key material.
  console.error(`enclave-app: ${err.code ?? err.name}: ${err.message}`);
  process.exit(1);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => app.close());
