import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import type { VerifiedAttestation } from '../attestation/index.node.js';
import type { AttestedTlsIdentity } from './identity.js';
import { createAttestedPeerVerifier, type AttestedPeerOptions, type AttestedPeerVerifier } from './peer.js';

/** Options of {@link createAttestedTlsServer}. */
export interface AttestedTlsServerOptions {
  identity: AttestedTlsIdentity;
  /** Mutual mode: what every client's attested certificate must show. Without it, clients are not checked. */
  clients?: AttestedPeerOptions | AttestedPeerVerifier;
  /** Further `tls.createServer` options (key, cert, requestCert and rejectUnauthorized are ours). */
  tlsOptions?: TlsOptions;
  /** Called with connections refused in mutual mode (their socket already destroyed). */
  onRefused?: (err: unknown, socket: TLSSocket) => void;
}

/**
 * A `tls.Server` that presents the identity's attested certificate (swapped on re-attestation
 * without dropping connections). In mutual mode it asks each client for its certificate and hands
 * a connection to `listener` only after the client's attestation passed; a refused client's
 * socket is destroyed before the server reads or writes a byte of application data.
 *
 * @example
 * ```ts
 * const server = createAttestedTlsServer({ identity, clients: { expectedPcrs: { 0: plannerPcr0 } } }, (socket, client) => {
 *   socket.end(`hello, enclave ${client.pcrsHex[0]}`);
 * });
 * server.listen(9443);
 * ```
 */
export function createAttestedTlsServer(options: AttestedTlsServerOptions, listener: (socket: TLSSocket, client: VerifiedAttestation | null) => void): TlsServer {
  if (typeof options !== 'object' || options === null || typeof options.identity?.tlsOptions !== 'function') throw new TypeError('options.identity must be an AttestedTlsIdentity');
  if (typeof listener !== 'function') throw new TypeError('listener must be a function');
  const clients = options.clients === undefined ? null : 'verifySocket' in options.clients ? options.clients : createAttestedPeerVerifier(options.clients);
  const server = createTlsServer({
    ...options.tlsOptions,
    ...options.identity.tlsOptions(),
    // Client certificates are self-signed; the attestation check below replaces the CA check.
    ...(clients ? { requestCert: true, rejectUnauthorized: false } : {}),
  });
  options.identity.attach(server);
  server.on('secureConnection', (socket: TLSSocket) => {
    if (!clients) return listener(socket, null);
    clients.verifySocket(socket).then(
      (facts) => listener(socket, facts),
      (err: unknown) => {
        socket.destroy();
        options.onRefused?.(err, socket);
      },
    );
  });
  return server;
}

/**
 * An `https.Server` presenting the identity's attested certificate that answers the well-known
 * path ({@link WELL_KNOWN_PATH}: the document, and per-session documents) itself and passes every
 * other request to `listener`.
 *
 * @example
 * ```ts
 * const server = createAttestedHttpsServer(identity, (req, res) => res.end('hello from the enclave'));
 * server.listen(8443);
 * ```
 */
export function createAttestedHttpsServer(identity: AttestedTlsIdentity, listener: (req: IncomingMessage, res: ServerResponse) => void, options: HttpsServerOptions = {}): HttpsServer {
  if (typeof identity?.tlsOptions !== 'function') throw new TypeError('identity must be an AttestedTlsIdentity');
  const server = createHttpsServer({ ...options, ...identity.tlsOptions() }, (req, res) => {
    if (!identity.handleWellKnown(req, res)) listener(req, res);
  });
  identity.attach(server);
  return server;
}
