import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { NsmClient } from '../nsm/index.js';
import { fromHex } from '../internal/bytes.js';
import { issueAttestedCertificate } from './certificate.js';
import { NO_CONTEXT, MIN_TLS_VERSION, certificateBinding, DOCUMENT_MEDIA_TYPE, SESSION_EXPORTER_LABEL, SESSION_EXPORTER_LENGTH, SESSION_NONCE_LENGTH, sessionBinding, WELL_KNOWN_PATH } from './wire.js';

/** Default interval between re-attestations: half of the clients' default `maxAgeMs` (10 minutes). */
export const DEFAULT_REATTEST_INTERVAL_MS = 5 * 60_000;

/** Timers, injectable so tests drive re-attestation without waiting. */
export interface IdentityTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Options of {@link createAttestedTlsIdentity}. */
export interface AttestedTlsIdentityOptions {
  /** The NSM that attests the key (`openNsm()` in an enclave; the simulated NSM in tests). */
  nsm: NsmClient;
  /** Re-attest (new document, new certificate, same key) this often. Default {@link DEFAULT_REATTEST_INTERVAL_MS}. */
  reattestIntervalMs?: number;
  /** subjectAltName DNS names of the certificate. Default none (clients check the attestation, not the name). */
  dnsNames?: readonly string[];
  /** Subject CN. Default `nitro-enclave attested`. */
  commonName?: string;
  /** Key curve. Default `P-256` (the cheapest handshake signature). */
  curve?: 'P-256' | 'P-384';
  /** Default `() => new Date()`. */
  clock?: () => Date;
  /** Default the global timers (unref'd, so an idle identity does not keep the process alive). */
  timers?: IdentityTimers;
  /** Called when a re-attestation fails; the current certificate stays in use and the next attempt follows one interval later. */
  onError?: (err: unknown) => void;
}

/** The TLS options of an attested identity, for `tls.createServer` / `https.createServer` / `tls.connect`. */
export interface AttestedTlsOptions {
  /** The private key as PEM, for OpenSSL inside this process only: never write, log or send it. */
  key: Buffer;
  cert: string;
  minVersion: 'TLSv1.3';
}

/** An enclave's TLS key and its current attested certificate; see {@link createAttestedTlsIdentity}. */
export interface AttestedTlsIdentity {
  /** The current certificate, DER. */
  readonly certificate: Uint8Array;
  /** The current certificate, PEM. */
  readonly certificatePem: string;
  /** The current attestation document (the one in the certificate). */
  readonly document: Uint8Array;
  /** SubjectPublicKeyInfo DER of the key (constant for the identity's life). */
  readonly spki: Uint8Array;
  /** Key and certificate for Node's TLS servers and clients. */
  tlsOptions(): AttestedTlsOptions;
  /** Swaps `server`'s certificate (`setSecureContext`) on every re-attestation; open connections keep theirs. Returns a detach function. */
  attach(server: TlsServer): () => void;
  /** Re-attests now. */
  refresh(): Promise<void>;
  /** A document binding `nonce` and this TLS session (its exported keying material): the per-session check. */
  sessionDocument(socket: TLSSocket, nonce: Uint8Array): Promise<Uint8Array>;
  /**
   * Serves {@link WELL_KNOWN_PATH}: the current document, or with `?nonce=<64 hex>` a session document.
   * Returns false (and leaves `res` alone) for any other path.
   */
  handleWellKnown(req: IncomingMessage, res: ServerResponse): boolean;
  /** Stops re-attesting. */
  close(): void;
}

const defaultTimers: IdentityTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Creates the enclave's TLS identity: a fresh key pair made in this process (a `KeyObject`; the
 * private key is handed to OpenSSL as PEM and never exported anywhere else) and a self-signed
 * certificate carrying an NSM attestation document whose `user_data` commits to the key
 * (docs/tls.md "Wire format"). Re-attests every `reattestIntervalMs` and swaps the certificate of
 * attached servers without dropping connections.
 *
 * @example
 * ```ts
 * import https from 'node:https';
 * import { openNsm } from 'nitro-enclave-sdk/nsm';
 * import { createAttestedTlsIdentity } from 'nitro-enclave-sdk/tls';
 *
 * const identity = await createAttestedTlsIdentity({ nsm: await openNsm() });
 * const server = https.createServer(identity.tlsOptions(), (req, res) => {
 *   if (identity.handleWellKnown(req, res)) return;
 *   res.end('hello from the enclave');
 * });
 * identity.attach(server);
 * server.listen(8443);
 * ```
 */
export async function createAttestedTlsIdentity(options: AttestedTlsIdentityOptions): Promise<AttestedTlsIdentity> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object with `nsm`');
  const { nsm } = options;
  if (!nsm || typeof nsm.attestation !== 'function') throw new TypeError('nsm must be an NsmClient');
  const interval = options.reattestIntervalMs ?? DEFAULT_REATTEST_INTERVAL_MS;
  if (!Number.isFinite(interval) || interval < 1000) throw new TypeError('reattestIntervalMs must be at least 1000');
  const clock = options.clock ?? (() => new Date());
  if (typeof clock !== 'function') throw new TypeError('clock must be a function returning a Date');
  const timers = options.timers ?? defaultTimers;
  const dnsNames = options.dnsNames ?? [];
  if (!Array.isArray(dnsNames) || dnsNames.some((n) => typeof n !== 'string' || !/^[A-Za-z0-9.*-]+$/.test(n))) throw new TypeError('dnsNames must be an array of DNS names');
  const commonName = options.commonName ?? 'nitro-enclave attested';
  if (typeof commonName !== 'string' || commonName.length === 0 || commonName.length > 64) throw new TypeError('commonName must be 1..64 characters');
  const curve = options.curve ?? 'P-256';
  if (curve !== 'P-256' && curve !== 'P-384') throw new TypeError("curve must be 'P-256' or 'P-384'");

  const { privateKey, publicKey }: { privateKey: KeyObject; publicKey: KeyObject } = generateKeyPairSync('ec', { namedCurve: curve });
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const servers = new Set<TlsServer>();
  let current = await issue();
  let timer: unknown = null;
  let closed = false;

  async function issue() {
    const document = await nsm.attestation({ userData: certificateBinding(spki) });
    const now = clock();
    const der = issueAttestedCertificate({
      privateKey,
      spki,
      document,
      // The document's age, not these dates, bounds trust; the window only has to cover clock skew.
      notBefore: new Date(now.getTime() - 5 * 60_000),
      notAfter: new Date(now.getTime() + 24 * 3600_000),
      commonName,
      dnsNames,
    });
    return { der, document, pem: new X509Certificate(der).toString() };
  }

  function tlsOptions(): AttestedTlsOptions {
    return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as Buffer, cert: current.pem, minVersion: MIN_TLS_VERSION };
  }

  async function refresh() {
    current = await issue();
    for (const server of servers) server.setSecureContext(tlsOptions());
  }

  function schedule() {
    if (closed) return;
    timer = timers.setTimeout(() => {
      refresh().catch((err: unknown) => options.onError?.(err)).finally(schedule);
    }, interval);
  }
  schedule();

  async function sessionDocument(socket: TLSSocket, nonce: Uint8Array) {
    if (!(nonce instanceof Uint8Array) || nonce.length !== SESSION_NONCE_LENGTH) throw new TypeError(`nonce must be ${SESSION_NONCE_LENGTH} bytes`);
    const ekm = new Uint8Array(socket.exportKeyingMaterial(SESSION_EXPORTER_LENGTH, SESSION_EXPORTER_LABEL, NO_CONTEXT));
    return nsm.attestation({ userData: sessionBinding(spki, nonce, ekm), nonce });
  }

  return {
    get certificate() {
      return current.der;
    },
    get certificatePem() {
      return current.pem;
    },
    get document() {
      return current.document;
    },
    spki,
    tlsOptions,
    attach(server) {
      servers.add(server);
      return () => void servers.delete(server);
    },
    refresh,
    sessionDocument,
    handleWellKnown(req, res) {
      const url = new URL(req.url ?? '/', 'https://enclave');
      if (url.pathname !== WELL_KNOWN_PATH) return false;
      const send = (status: number, body: Uint8Array | string, type: string) => {
        res.writeHead(status, { 'content-type': type, 'content-length': typeof body === 'string' ? Buffer.byteLength(body) : body.length, 'cache-control': 'no-store' });
        res.end(body);
      };
      if (req.method !== 'GET') {
        send(405, 'GET only\n', 'text/plain');
        return true;
      }
      const nonceHex = url.searchParams.get('nonce');
      if (nonceHex === null) {
        send(200, current.document, DOCUMENT_MEDIA_TYPE);
        return true;
      }
      const nonce = /^[0-9a-f]{64}$/.test(nonceHex) ? fromHex(nonceHex) : null;
      if (!nonce) {
        send(400, 'nonce must be 64 lower-case hex digits\n', 'text/plain');
        return true;
      }
      sessionDocument(req.socket as TLSSocket, nonce).then(
        (doc) => send(200, doc, DOCUMENT_MEDIA_TYPE),
        () => send(503, 'attestation unavailable\n', 'text/plain'),
      );
      return true;
    },
    close() {
      closed = true;
      if (timer !== null) timers.clearTimeout(timer);
    },
  };
}
