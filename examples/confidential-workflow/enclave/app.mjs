// The enclave side: get the TSK at start, then serve the agents as sealed activities over vsock.
import { fetchParentFile, fromParentCredentials, getTrustedSessionKey } from 'nitro-enclave-sdk';
import { serveSealedActivities } from 'nitro-enclave-sdk/workflow';
import { agents, fromBytes, toBytes } from './agents.mjs';
import { ROUTES } from './steps.mjs';

/** Sealed-activity handlers: plaintext in, plaintext out; opening, binding checks and sealing are the server's job. */
export const handlers = Object.fromEntries(
  Object.entries(agents).map(([name, agent]) => [name, { ...ROUTES[name], run: (plaintext) => toBytes(agent(fromBytes(plaintext))) }]),
);

/**
 * Starts the enclave side. Everything environment-specific is injectable, so the same function runs
 * in the enclave (defaults: /dev/nsm, vsock to the parent) and against the simulators.
 */
export async function startEnclave(config) {
  const credentialsAddress = config.credentialsAddress ? { address: config.credentialsAddress } : {};
  const tsk = await getTrustedSessionKey({
    ciphertextBlob: config.ciphertextBlob ?? (await fetchParentFile('tsk', credentialsAddress)),
    // A key ARN or alias ARN from the image (never the parent): getTrustedSessionKey refuses anything else.
    keyId: config.keyId,
    region: config.region,
    credentials: config.credentials ?? fromParentCredentials(credentialsAddress),
    ...(config.transport ? { transport: config.transport } : {}),
    ...(config.nsm ? { nsm: config.nsm } : {}),
    ...(config.attestationTrustAnchors ? { attestationTrustAnchors: config.attestationTrustAnchors } : {}),
    ...(config.tlsCa ? { tlsCa: config.tlsCa } : {}),
  });
  const server = serveSealedActivities({ listen: config.listen ?? { family: 'vsock', cid: 0xffffffff, port: 5000 }, key: tsk, handlers });
  return {
    tsk,
    server,
    async close() {
      await server.close();
      tsk.dispose();
    },
  };
}
