import { randomBytes } from 'node:crypto';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { VerifiedAttestation } from '../attestation/index.node.js';
import { NitroEnclaveError } from '../errors.js';
import { toHex } from '../internal/bytes.js';
import type { AttestedTlsIdentity } from './identity.js';
import { createAttestedPeerVerifier, type AttestedPeerOptions, type AttestedPeerVerifier } from './peer.js';
import { MIN_TLS_VERSION, SESSION_NONCE_LENGTH, WELL_KNOWN_PATH } from './wire.js';

/** Options shared by the attested clients (agent, dispatcher, {@link connectAttested}). */
export interface AttestedClientOptions extends AttestedPeerOptions {
  /**
   * A peer verifier to share between clients (its cache); default one per client, built from these
   * options. With `peers`, what is admitted is the verifier's `expectedPcrs`; an `expectedPcrs` given
   * beside it must name the same sets (a `TypeError` otherwise).
   */
  peers?: AttestedPeerVerifier;
  /**
   * Per-session freshness: after the certificate check, ask the server (HTTP, on this connection,
   * at the well-known path) for a document binding a fresh nonce and this session's RFC 5705
   * exported keying material. Costs one NSM attestation per connection. Default `false`.
   */
  sessionCheck?: boolean;
  /** Mutual mode: present this enclave's own attested certificate. */
  identity?: AttestedTlsIdentity;
}

/** Resolves the peer verifier of a client's options (validated once, at creation). */
export function clientPeers(options: AttestedClientOptions): AttestedPeerVerifier {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object with `expectedPcrs`');
  if (options.sessionCheck !== undefined && typeof options.sessionCheck !== 'boolean') throw new TypeError('sessionCheck must be a boolean');
  if (options.identity !== undefined && typeof options.identity?.tlsOptions !== 'function') throw new TypeError('identity must be an AttestedTlsIdentity');
  if (options.peers !== undefined) {
    if (typeof options.peers?.verifySocket !== 'function') throw new TypeError('peers must be an AttestedPeerVerifier');
    // The shared verifier decides what is admitted. `expectedPcrs` beside it is what the caller
    // believes is admitted: a difference would be silently ignored, so it is refused instead.
    if (options.expectedPcrs !== undefined && canonicalPcrs(options.expectedPcrs) !== canonicalPcrs(options.peers.expectedPcrs)) {
      throw new TypeError('expectedPcrs differs from the expectedPcrs of `peers`, which is what the client checks: give one of them, or the same sets');
    }
    return options.peers;
  }
  return createAttestedPeerVerifier(options);
}

/** PCR sets in one comparable form: each set's entries by index, hex in lower case; the order of alternatives kept. */
function canonicalPcrs(pcrs: unknown): string {
  const sets = Array.isArray(pcrs) ? pcrs : [pcrs];
  return JSON.stringify(
    sets.map((set) =>
      typeof set === 'object' && set !== null
        ? Object.entries(set as Record<string, unknown>)
            .map(([k, v]) => [Number(k), typeof v === 'string' ? v.toLowerCase() : v instanceof Uint8Array ? toHex(v) : v] as const)
            .sort((a, b) => a[0] - b[0])
        : set,
    ),
  );
}

/** TLS options every attested client uses: the CA check is replaced by the attestation check, never skipped. */
export function attestedTlsOptions(options: AttestedClientOptions): ConnectionOptions {
  return {
    // The certificate is self-signed; what vouches for it is the document, checked in `attest()`.
    rejectUnauthorized: false,
    minVersion: MIN_TLS_VERSION,
    ...(options.identity ? options.identity.tlsOptions() : {}),
  };
}

/**
 * TLS sessions kept for resumption, each with the certificate its full handshake verified. A
 * resumed TLS 1.3 session carries no certificate (Node reports none), but only the server of the
 * original handshake can complete it (it holds the resumption secret): the check runs again on
 * that original certificate, so its document's age and chain are judged anew.
 */
export class SessionCache {
  readonly #sessions = new Map<string, { session: Buffer; certificate: Uint8Array }>();
  readonly #offered = new WeakMap<TLSSocket, Uint8Array>();
  constructor(readonly max: number) {}

  /** The session to offer for `origin`, if any. */
  offer(origin: string): Buffer | undefined {
    return this.#sessions.get(origin)?.session;
  }

  /** Remembers which certificate the session offered on `socket` belongs to. */
  offered(socket: TLSSocket, origin: string): void {
    const entry = this.#sessions.get(origin);
    if (entry) this.#offered.set(socket, entry.certificate);
  }

  certificateOfResumed(socket: TLSSocket): Uint8Array | undefined {
    return this.#offered.get(socket);
  }

  /** After the check passed: tickets on this socket resume to `certificate`. */
  keep(socket: TLSSocket, origin: string, certificate: Uint8Array): void {
    if (this.max === 0) return;
    const store = (session: Buffer) => {
      this.#sessions.delete(origin);
      if (this.#sessions.size >= this.max) this.#sessions.delete(this.#sessions.keys().next().value!);
      this.#sessions.set(origin, { session, certificate });
    };
    for (const session of pendingSessions.get(socket) ?? []) store(session);
    pendingSessions.delete(socket);
    socket.on('session', store);
  }

  forget(origin: string): void {
    this.#sessions.delete(origin);
  }
}

/** Tickets that arrived before the check finished: kept only once it passed. */
const pendingSessions = new WeakMap<TLSSocket, Buffer[]>();

/** Collects session tickets from the start of a connection (TLS 1.3 may send them before `secureConnect` listeners run). */
export function collectSessions(socket: TLSSocket): void {
  const list: Buffer[] = [];
  pendingSessions.set(socket, list);
  const early = (session: Buffer) => {
    if (pendingSessions.get(socket) === list) list.push(session);
    else socket.off('session', early);
  };
  socket.on('session', early);
}

function peerCertificate(socket: TLSSocket, sessions: SessionCache | undefined): Uint8Array {
  if (socket.isSessionReused()) {
    const original = sessions?.certificateOfResumed(socket);
    if (!original) throw new NitroEnclaveError('ERR_TLS_ATTESTATION_MISSING', 'a resumed TLS session whose original certificate this client did not check');
    return original;
  }
  // The leaf's DER only: the detailed form (`true`) also converts the issuer chain (see peer.ts).
  const cert = socket.getPeerCertificate();
  const raw = cert && typeof cert === 'object' && 'raw' in cert ? cert.raw : undefined;
  if (!raw || raw.length === 0) throw new NitroEnclaveError('ERR_TLS_ATTESTATION_MISSING', 'the peer presented no certificate');
  return new Uint8Array(raw);
}

const waitSecure = (socket: TLSSocket): Promise<void> =>
  new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      resolve();
    });
  });

/**
 * Runs the attestation check on a client TLS socket just made by `tls.connect` (call it in the
 * same tick, before `secureConnect` can fire): resolves
 * with the peer's verified facts, or destroys the socket and rejects. The caller writes nothing
 * before this resolves.
 */
export async function attest(socket: TLSSocket, peers: AttestedPeerVerifier, options: { sessionCheck?: boolean; host?: string; sessions?: SessionCache; origin?: string } = {}): Promise<VerifiedAttestation> {
  try {
    await waitSecure(socket);
    const certificate = peerCertificate(socket, options.sessions);
    const facts = await peers.verifyCertificate(certificate);
    options.sessions?.keep(socket, options.origin ?? '', certificate);
    if (options.sessionCheck) {
      const nonce = new Uint8Array(randomBytes(SESSION_NONCE_LENGTH));
      const document = await fetchSessionDocument(socket, nonce, options.host ?? 'enclave');
      return await peers.verifySessionDocument(socket, certificate, document, nonce);
    }
    return facts;
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** One HTTP/1.1 GET on the raw socket, answer read to its Content-Length; later bytes stay in the socket. */
function fetchSessionDocument(socket: TLSSocket, nonce: Uint8Array, host: string): Promise<Uint8Array> {
  const refused = (why: string) => new NitroEnclaveError('ERR_TLS_ATTESTATION_SESSION', `the session attestation failed: ${why}`);
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    // 'readable' + read(), not 'data': removing the last 'readable' listener returns the stream to
    // its initial state, so the HTTP client that takes the socket next starts it as usual.
    const done = (err: Error | null, doc?: Uint8Array, rest?: Buffer) => {
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      if (rest && rest.length) socket.unshift(rest);
      if (err) reject(err);
      else resolve(doc!);
    };
    const onEnd = () => done(refused('the server closed the connection'));
    const onReadable = () => {
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length > 64 * 1024) return done(refused('the answer is too large'));
        const headEnd = buffered.indexOf('\r\n\r\n');
        if (headEnd < 0) continue;
        const head = buffered.subarray(0, headEnd).toString('latin1').split('\r\n');
        if (!/^HTTP\/1\.1 200 /.test(head[0] ?? '')) return done(refused(`the server answered ${JSON.stringify((head[0] ?? '').slice(0, 40))}`));
        const length = head.map((h) => /^content-length:\s*(\d+)\s*$/i.exec(h)).find(Boolean)?.[1];
        if (length === undefined) return done(refused('the answer has no Content-Length'));
        const end = headEnd + 4 + Number(length);
        if (buffered.length < end) continue;
        return done(null, new Uint8Array(buffered.subarray(headEnd + 4, end)), buffered.subarray(end));
      }
    };
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.write(`GET ${WELL_KNOWN_PATH}?nonce=${toHex(nonce)} HTTP/1.1\r\nHost: ${host}\r\nAccept: application/cbor\r\n\r\n`);
  });
}

/** Options of {@link connectAttested}. */
export interface ConnectAttestedOptions extends AttestedClientOptions {
  host?: string;
  port?: number;
  /** An existing stream to run TLS over (e.g. a vsock connection); instead of `host`/`port`. */
  socket?: Duplex;
  /** SNI name. Default none. */
  servername?: string;
}

/**
 * Opens a TLS connection and resolves only when the server's attested certificate passed the
 * check (and, in mutual mode, presents `identity`'s own): the stream for an enclave-to-enclave
 * exchange. Rejects with an `ERR_TLS_ATTESTATION_*` code, the socket destroyed, otherwise.
 *
 * @example
 * ```ts
 * const { socket, peer } = await connectAttested({ host: '127.0.0.1', port: 9443, identity, expectedPcrs: { 0: peerPcr0 } });
 * socket.write(sealedStepResult);
 * ```
 */
export async function connectAttested(options: ConnectAttestedOptions): Promise<{ socket: TLSSocket; peer: VerifiedAttestation }> {
  const peers = clientPeers(options);
  const socket = tlsConnect({
    ...attestedTlsOptions(options),
    ...(options.socket ? { socket: options.socket } : { host: options.host ?? 'localhost', port: options.port }),
    ...(options.servername !== undefined && { servername: options.servername }),
  });
  const peer = await attest(socket, peers, { sessionCheck: options.sessionCheck ?? false, host: options.host ?? 'enclave' });
  return { socket, peer };
}
