import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { KMSClient } from '@aws-sdk/client-kms';
import { kmsClientConfig, type KmsSimulator, type SimulatedEnclave, type TestPrincipal } from '../../src/testing/index.js';
import type { StreamConnector } from '../../src/vsock/agent.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export function client(sim: KmsSimulator, principal: TestPrincipal): KMSClient {
  return new KMSClient(kmsClientConfig(sim, principal));
}

let cached: { privateKey: KeyObject; publicKey: KeyObject } | undefined;
/** One RSA-2048 pair shared by tests (key generation is slow and not what they test). */
export function rsaPair(): { privateKey: KeyObject; publicKey: KeyObject; spki: Uint8Array } {
  cached ??= generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...cached, spki: new Uint8Array(cached.publicKey.export({ format: 'der', type: 'spki' })) };
}

export function recipient(enclave: SimulatedEnclave, spki: Uint8Array) {
  return { KeyEncryptionAlgorithm: 'RSAES_OAEP_SHA_256' as const, AttestationDocument: enclave.attest({ publicKey: spki }) };
}

/** Sees each KMS request by operation name; `forward` sends it on, `signal` is the request's abort signal. */
export type Intercept = (operation: string, forward: () => Promise<{ response: unknown }>, signal: AbortSignal | undefined) => Promise<{ response: unknown }>;

/**
 * A KMSClient for `principal` whose HTTP requests pass through `intercept`
 * first: a stand-in for a slow or stuck network, never a fake KMS (every
 * answer still comes from the simulator).
 */
export function interceptedClient(sim: KmsSimulator, principal: TestPrincipal, intercept: Intercept, connect?: StreamConnector): KMSClient {
  const config = kmsClientConfig(sim, principal, connect);
  const inner = config.requestHandler;
  const handler = {
    metadata: inner.metadata,
    handle(request: { headers: Record<string, string> }, options: { abortSignal?: AbortSignal } = {}) {
      const target = Object.entries(request.headers).find(([k]) => k.toLowerCase() === 'x-amz-target')?.[1] ?? '';
      return intercept(target.replace('TrentService.', ''), () => inner.handle(request as never, options as never), options.abortSignal);
    },
    updateHttpClientConfig: inner.updateHttpClientConfig.bind(inner),
    httpHandlerConfigs: inner.httpHandlerConfigs.bind(inner),
    destroy: () => inner.destroy(),
  };
  return new KMSClient({ ...config, requestHandler: handler as never });
}

/** Waits until `signal` aborts (forever without one), then rejects as the SDK's handler does. */
export function untilAborted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(Object.assign(new Error('Request aborted'), { name: 'AbortError' }));
    if (signal?.aborted) fail();
    else signal?.addEventListener('abort', fail, { once: true });
  });
}

/** A gate a test opens when it chooses. */
export function gate(): { wait: (signal?: AbortSignal) => Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { wait: (signal) => Promise.race([opened, untilAborted(signal)]), open };
}

/** The name and message a KMS call failed with; throws if it succeeded. */
export async function errorOf(p: Promise<unknown>): Promise<{ name: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return { name: (err as Error).name, message: (err as Error).message };
  }
  throw new Error('expected the call to fail');
}

/**
 * Makes every answer of `kms` name `keyArn` as its KeyId (what a forged or confused answer would
 * say) and keeps the CiphertextForRecipient it carried, so a test can check it was zeroed.
 */
export function answerForKey(kms: KMSClient, keyArn: string): { readonly envelope: Uint8Array | undefined } {
  const seen: { envelope: Uint8Array | undefined } = { envelope: undefined };
  kms.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const out = result.output as { KeyId?: string; CiphertextForRecipient?: Uint8Array };
      // Only answers that carry an envelope: the key audit's reads (DescribeKey…) may come back after it.
      if (out.CiphertextForRecipient) seen.envelope = out.CiphertextForRecipient;
      if ('KeyId' in out) out.KeyId = keyArn;
      return result;
    },
    { step: 'initialize', name: 'answerForKey' },
  );
  return seen;
}

/**
 * A data key under a hardened key (buildKeyPolicy) whose plaintext the test knows, made the only way
 * the policy allows: GenerateDataKey with the attestation of an admitted image, its plaintext coming
 * back only inside the CiphertextForRecipient for the test's RSA key. `kms` must be a caller that IAM
 * or the key policy allows kms:GenerateDataKey (the simulator's admin has IAM kms:*). The same shape
 * as GenerateDataKey's answer.
 */
export async function knownDataKey(
  kms: KMSClient,
  enclave: SimulatedEnclave,
  input: { KeyId: string; EncryptionContext?: Record<string, string>; KeySpec?: 'AES_256' },
): Promise<{ CiphertextBlob: Uint8Array; Plaintext: Uint8Array; KeyId: string }> {
  const { GenerateDataKeyCommand } = await import('@aws-sdk/client-kms');
  const { decryptCiphertextForRecipient } = await import('../../src/kms/cms.js');
  const out = await kms.send(new GenerateDataKeyCommand({ KeySpec: 'AES_256', ...input, Recipient: recipient(enclave, rsaPair().spki) }));
  return { CiphertextBlob: out.CiphertextBlob!, Plaintext: await decryptCiphertextForRecipient(out.CiphertextForRecipient!, rsaPair().privateKey), KeyId: out.KeyId! };
}
