import { DefaultFailureConverter } from '@temporalio/common';

/**
 * The `failureConverter` export for `dataConverter.failureConverterPath`: Temporal's default
 * converter with `encodeCommonAttributes`, so a failure's message and stack trace travel as an
 * encoded payload (which the payload codec then encrypts) and the plaintext fields read
 * "Encoded failure". This module is bundled into the workflow sandbox: it imports nothing else.
 *
 * @example
 * ```ts
 * import { createRequire } from 'node:module';
 * const failureConverterPath = createRequire(import.meta.url).resolve('nitro-enclave-sdk/temporal/failure-converter');
 * const worker = await Worker.create({ ...options, dataConverter: { payloadCodecs: [codec], failureConverterPath } });
 * ```
 */
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
