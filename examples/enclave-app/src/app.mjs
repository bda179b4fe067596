// The example enclave app: get the TSK at start, then serve agents over vsock.
import { fetchParentFile, fromParentCredentials, getTrustedSessionKey } from 'nitro-enclave-sdk';
import { listenSocket } from 'nitro-enclave-sdk/vsock';
import { createNsmClient, openNsm } from 'nitro-enclave-sdk/nsm';
import { createAttestedReceiver } from 'nitro-enclave-sdk/seal';
import { createAgentMessageService, serveConnection } from './service.mjs';

/**
 * Starts the app. Everything environment-specific is injectable, so the same
 * function runs in the enclave (defaults: /dev/nsm, vsock to the parent) and
 * against the simulators in tests.
 */
export async function startApp(config) {
  const started = Date.now();
  // The blob comes from the parent at run time unless a path is given: it cannot be part of the
  // image, because the key policy needs the image's PCR0 before the blob can exist.
  const blob = config.ciphertextBlobPath ? { ciphertextBlobPath: config.ciphertextBlobPath } : { ciphertextBlob: await fetchParentFile('tsk', config.credentialsAddress ? { address: config.credentialsAddress } : {}) };
  const tsk = await getTrustedSessionKey({
    ...blob,
    // A key ARN or alias ARN from the image (measured in PCR0), never from the parent: required.
    keyId: config.keyId,
    region: config.region,
    credentials: config.credentials ?? fromParentCredentials(config.credentialsAddress ? { address: config.credentialsAddress } : {}),
    ...(config.transport ? { transport: config.transport } : {}),
    ...(config.nsm ? { nsm: config.nsm } : {}),
    ...(config.attestationTrustAnchors ? { attestationTrustAnchors: config.attestationTrustAnchors } : {}),
    ...(config.tlsCa ? { tlsCa: config.tlsCa } : {}),
  });
  // The gateway's HPKE key for clients (attest / open); made here, inside the enclave.
  const nsm = typeof config.nsm?.attestation === 'function' ? config.nsm : config.nsm ? createNsmClient(config.nsm) : openNsm();
  const receiver = await createAttestedReceiver({ nsm });
  const service = createAgentMessageService(tsk, { receiver });
  const listener = listenSocket(config.listen ?? { family: 'vsock', cid: 0xffffffff, port: 5000 }, (socket) => serveConnection(service, socket));
  config.log?.(`TSK released to PCR0 ${tsk.metadata.pcr0.slice(0, 16)}… in ${Date.now() - started} ms; serving agents`);
  return {
    service,
    tsk,
    close() {
      listener.close();
      tsk.dispose();
      if (nsm !== config.nsm) void nsm.close();
    },
  };
}
