import type { DataConverter } from '@temporalio/common';
import { fileURLToPath } from 'node:url';
import { createTskPayloadCodec, type TskPayloadCodecOptions } from './payload-codec.js';

/**
 * The path of this package's failure converter module (its `failureConverter` export encodes failure
 * messages and stack traces), for `dataConverter.failureConverterPath` and `bundleWorkflowCode`.
 *
 * @example
 * ```ts
 * const workflowBundle = await bundleWorkflowCode({ workflowsPath, failureConverterPath });
 * ```
 */
export const failureConverterPath: string = fileURLToPath(new URL('./failure-converter.js', import.meta.url));

/**
 * The `dataConverter` for `new Client(...)`, `Worker.create(...)` and `Worker.runReplayHistory(...)`:
 * the TSK payload codec plus the failure converter that encrypts failure messages and stack traces.
 * Give every client and worker of a namespace the same keys, or some of them will see ciphertext
 * they cannot read. The client loads the failure converter with `require()` (an ES module: Node
 * ≥ 20.19); the worker bundles it into the workflow code (pass `failureConverterPath` to
 * `bundleWorkflowCode` when you prebuild the bundle).
 *
 * @example
 * ```ts
 * const dataConverter = createTskDataConverter({ keys: ring });
 * const client = new Client({ connection, dataConverter });
 * const worker = await Worker.create({ connection: nativeConnection, taskQueue: 'agents', workflowsPath, activities, dataConverter });
 * await Worker.runReplayHistory({ workflowsPath, dataConverter }, history);
 * ```
 */
export function createTskDataConverter(options: TskPayloadCodecOptions): DataConverter & { payloadCodecs: NonNullable<DataConverter['payloadCodecs']>; failureConverterPath: string } {
  return { payloadCodecs: [createTskPayloadCodec(options)], failureConverterPath };
}
