import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { KMSClient } from '@aws-sdk/client-kms';
import { kmsClientConfig, type KmsSimulator, type SimulatedEnclave, type TestPrincipal } from '../../src/testing/index.js';

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
