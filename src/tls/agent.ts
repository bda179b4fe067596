import { Agent, type AgentOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { attest, attestedTlsOptions, clientPeers, collectSessions, SessionCache, type AttestedClientOptions } from './connect.js';

/** Options of {@link createAttestedHttpsAgent}: what the server must show, plus `node:https` agent options. */
export interface AttestedAgentOptions extends AttestedClientOptions {
  /** Passed to `https.Agent` (keepAlive, maxSockets, timeout…). TLS verification options are ours. */
  agentOptions?: AgentOptions;
}

/**
 * An `https.Agent` whose every new connection is checked before the request is written: the
 * server's certificate must carry an attestation document that verifies (AWS root or
 * `trustAnchors`), shows an admitted PCR set, is fresh, and commits to the key the server proved
 * in the handshake. On failure the socket is destroyed and the request fails with an
 * `ERR_TLS_ATTESTATION_*` error, no request byte sent. Keep-alive reuses only sockets that
 * passed; a resumed TLS session is a new connection and is checked again.
 *
 * @example
 * ```ts
 * import https from 'node:https';
 * import { createAttestedHttpsAgent } from 'nitro-enclave-sdk/tls';
 *
 * const agent = createAttestedHttpsAgent({ expectedPcrs: [{ 0: pcr0v1 }, { 0: pcr0v2 }], agentOptions: { keepAlive: true } });
 * https.get('https://enclave.example:8443/hello', { agent }, (res) => res.pipe(process.stdout));
 * ```
 */
export function createAttestedHttpsAgent(options: AttestedAgentOptions): Agent {
  const peers = clientPeers(options);
  const sessionCheck = options.sessionCheck ?? false;
  if (options.agentOptions !== undefined && (typeof options.agentOptions !== 'object' || options.agentOptions === null)) throw new TypeError('agentOptions must be an object');

  // Our session cache, not https.Agent's: a resumed session must be checked against the
  // certificate of the handshake it resumes (see SessionCache).
  const sessions = new SessionCache(options.agentOptions?.maxCachedSessions ?? 100);

  class AttestedAgent extends Agent {
    override createConnection(connectOptions: Record<string, unknown>, callback: (err: Error | null, socket?: Duplex) => void): undefined {
      const origin = `${String(connectOptions.host)}:${String(connectOptions.port)}:${String(connectOptions.servername ?? '')}`;
      const session = sessions.offer(origin);
      // Per connection: in mutual mode the identity's certificate changes at each re-attestation.
      const socket = tlsConnect({ ...(connectOptions as object), ...attestedTlsOptions(options), ...(session ? { session } : {}) });
      collectSessions(socket);
      sessions.offered(socket, origin);
      attest(socket, peers, { sessionCheck, host: String(connectOptions.host ?? 'enclave'), sessions, origin }).then(
        () => callback(null, socket),
        (err: Error) => {
          sessions.forget(origin);
          callback(err);
        },
      );
      return undefined;
    }
  }
  return new AttestedAgent({ ...options.agentOptions, maxCachedSessions: 0 });
}
