#!/usr/bin/env node
// Entry point of the parent's worker (parent/5-run-worker.sh). Configuration from the environment.
import { NativeConnection } from '@temporalio/worker';
import { createParentWorker } from './worker.mjs';

const env = process.env;
const connection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
const worker = await createParentWorker({
  connection,
  namespace: env.TEMPORAL_NAMESPACE ?? 'default',
  taskQueue: env.TASK_QUEUE ?? 'confidential-agents',
  enclave: { family: 'vsock', cid: Number(env.ENCLAVE_CID ?? 16), port: Number(env.AGENTS_PORT ?? 5000) },
});
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => worker.shutdown());
await worker.run();
await connection.close();
