// A minimal TLS 1.3 server for one question: does a client check the server's CertificateVerify
// signature against the certificate's key? The attested clients connect with
// `rejectUnauthorized: false` (the attestation document, not a CA, vouches for the certificate) and
// rely on the TLS stack still checking that signature: it is what proves the server holds the key
// the document commits to. A parent that relays the bytes can fetch the enclave's certificate (it is
// public) but not its key; this server plays that parent: it presents a given certificate and signs
// CertificateVerify with whatever key it is given (the certificate's own key for the control case).
//
// It speaks only what the tests need: TLS_AES_128_GCM_SHA256, an x25519 key share in the first
// ClientHello (no HelloRetryRequest), an ECDSA P-256 or P-384 signing key, no client certificate,
// no session tickets. It records per connection what the client did, decrypting the client's
// records with the keys it derived: a server that completes the handshake can read everything the
// client writes after it, which is what a client that skips the signature check would give away.
// Test code only (RFC 8446 §4, §7), written for this project.
import { createCipheriv, createDecipheriv, createHash, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, sign, timingSafeEqual, type KeyObject } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';

/** What one client connection did, as the server saw it. */
export interface HandshakeRecord {
  /** A ClientHello this server could answer (TLS 1.3, TLS_AES_128_GCM_SHA256, x25519, the signing key's scheme). */
  serverHelloSent: boolean;
  /** Alerts the client sent, in order; `encrypted` when under the handshake or application keys. */
  alerts: { level: number; description: number; encrypted: boolean }[];
  /** The client sent its Finished with a valid MAC: it accepted the handshake, signature included. */
  clientFinished: boolean;
  /** Application data the client sent after its Finished, decrypted. */
  applicationData: Buffer;
  /** Why this server gave up on the connection (a ClientHello it does not support, a record it cannot open). */
  error?: string;
}

/** Options of {@link createWrongKeyServer}. */
export interface WrongKeyServerOptions {
  /** The certificate to present, DER (for the tests, the genuine enclave's attested certificate). */
  certificate: Uint8Array;
  /** The key that signs CertificateVerify: an unrelated ECDSA key, or the certificate's own for the control case. */
  signingKey: KeyObject;
  /** Bytes to answer the client's first application data with (e.g. an HTTP response), then the server closes; default none. */
  reply?: (data: Buffer) => Uint8Array | undefined;
}

export interface WrongKeyServer {
  server: Server;
  /** One record per accepted connection, in order of arrival. */
  connections: HandshakeRecord[];
  /** Resolves once every connection accepted so far has closed (its record is final). */
  settled(): Promise<void>;
}

const CONTENT = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 } as const;
const HANDSHAKE = { clientHello: 1, serverHello: 2, encryptedExtensions: 8, certificate: 11, certificateVerify: 15, finished: 20 } as const;
const TLS13 = 0x0304;
const TLS_AES_128_GCM_SHA256 = 0x1301;
const X25519 = 0x001d;
const EXTENSION = { signatureAlgorithms: 0x000d, supportedVersions: 0x002b, keyShare: 0x0033 } as const;
const SCHEMES: Record<string, { scheme: number; hash: string }> = {
  prime256v1: { scheme: 0x0403, hash: 'sha256' }, // ecdsa_secp256r1_sha256
  secp384r1: { scheme: 0x0503, hash: 'sha384' }, // ecdsa_secp384r1_sha384
};
const MAX_FRAGMENT = 1 << 14;
// SubjectPublicKeyInfo prefix of an X25519 key: lets Node import the client's raw 32-byte share.
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest();
const hmac = (key: Uint8Array, data: Uint8Array) => createHmac('sha256', key).update(data).digest();
const u8 = (n: number) => Buffer.of(n);
const u16 = (n: number) => Buffer.of(n >> 8, n & 0xff);
const u24 = (n: number) => Buffer.of(n >> 16, (n >> 8) & 0xff, n & 0xff);
const vector8 = (b: Uint8Array) => Buffer.concat([u8(b.length), b]);
const vector16 = (b: Uint8Array) => Buffer.concat([u16(b.length), b]);
const vector24 = (b: Uint8Array) => Buffer.concat([u24(b.length), b]);
const handshakeMessage = (type: number, body: Uint8Array) => Buffer.concat([u8(type), vector24(body)]);
const record = (type: number, fragment: Uint8Array) => Buffer.concat([u8(type), u16(0x0303), vector16(fragment)]);

/** HKDF-Expand (RFC 5869) with SHA-256. */
function expand(prk: Uint8Array, info: Uint8Array, length: number): Buffer {
  const blocks: Buffer[] = [];
  let previous = Buffer.alloc(0);
  for (let i = 1; blocks.length * 32 < length; i++) blocks.push((previous = hmac(prk, Buffer.concat([previous, info, u8(i)]))));
  return Buffer.concat(blocks).subarray(0, length);
}

/** HKDF-Expand-Label (RFC 8446 §7.1). */
function expandLabel(secret: Uint8Array, label: string, context: Uint8Array, length: number): Buffer {
  return expand(secret, Buffer.concat([u16(length), vector8(Buffer.from(`tls13 ${label}`)), vector8(context)]), length);
}

/** The AEAD of one direction and epoch (RFC 8446 §5.2, §5.3). */
class TrafficKeys {
  readonly #key: Buffer;
  readonly #iv: Buffer;
  #sequence = 0n;
  constructor(secret: Uint8Array) {
    this.#key = expandLabel(secret, 'key', Buffer.alloc(0), 16);
    this.#iv = expandLabel(secret, 'iv', Buffer.alloc(0), 12);
  }
  #nonce() {
    const nonce = Buffer.from(this.#iv);
    const sequence = Buffer.alloc(8);
    sequence.writeBigUInt64BE(this.#sequence++);
    for (let i = 0; i < 8; i++) nonce[4 + i]! ^= sequence[i]!;
    return nonce;
  }
  seal(type: number, data: Uint8Array): Buffer {
    const out: Buffer[] = [];
    for (let at = 0; at === 0 || at < data.length; at += MAX_FRAGMENT) {
      const inner = Buffer.concat([data.subarray(at, at + MAX_FRAGMENT), u8(type)]);
      const cipher = createCipheriv('aes-128-gcm', this.#key, this.#nonce());
      cipher.setAAD(Buffer.concat([u8(CONTENT.applicationData), u16(0x0303), u16(inner.length + 16)]));
      out.push(record(CONTENT.applicationData, Buffer.concat([cipher.update(inner), cipher.final(), cipher.getAuthTag()])));
    }
    return Buffer.concat(out);
  }
  /** Opens one record; throws when the tag does not verify (wrong keys or tampering). */
  open(header: Buffer, fragment: Buffer): { type: number; data: Buffer } {
    const decipher = createDecipheriv('aes-128-gcm', this.#key, this.#nonce());
    decipher.setAAD(header);
    decipher.setAuthTag(fragment.subarray(-16));
    const inner = Buffer.concat([decipher.update(fragment.subarray(0, -16)), decipher.final()]);
    let end = inner.length - 1;
    while (end >= 0 && inner[end] === 0) end--;
    return { type: inner[end]!, data: inner.subarray(0, end) };
  }
}

interface ClientHello {
  sessionId: Buffer;
  cipherSuites: number[];
  versions: number[];
  schemes: number[];
  x25519Share?: Buffer;
}

function parseClientHello(body: Buffer): ClientHello {
  let at = 2 + 32; // legacy_version, random
  const sessionId = body.subarray(at + 1, at + 1 + body[at]!);
  at += 1 + body[at]!;
  const suites = body.subarray(at + 2, at + 2 + body.readUInt16BE(at));
  at += 2 + suites.length;
  at += 1 + body[at]!; // legacy_compression_methods
  const end = at + 2 + body.readUInt16BE(at);
  at += 2;
  const hello: ClientHello = { sessionId, cipherSuites: [], versions: [], schemes: [] };
  for (let i = 0; i < suites.length; i += 2) hello.cipherSuites.push(suites.readUInt16BE(i));
  while (at < end) {
    const type = body.readUInt16BE(at);
    const data = body.subarray(at + 4, at + 4 + body.readUInt16BE(at + 2));
    at += 4 + data.length;
    if (type === EXTENSION.supportedVersions) for (let i = 1; i < data.length; i += 2) hello.versions.push(data.readUInt16BE(i));
    if (type === EXTENSION.signatureAlgorithms) for (let i = 2; i < data.length; i += 2) hello.schemes.push(data.readUInt16BE(i));
    if (type === EXTENSION.keyShare) {
      for (let i = 2; i < data.length; ) {
        const group = data.readUInt16BE(i);
        const share = data.subarray(i + 4, i + 4 + data.readUInt16BE(i + 2));
        if (group === X25519) hello.x25519Share = share;
        i += 4 + share.length;
      }
    }
  }
  return hello;
}

/**
 * Starts nothing: returns an unbound TCP server (listen it with the tests' `listen()`) that answers
 * each ClientHello with ServerHello, EncryptedExtensions, Certificate (`certificate`),
 * CertificateVerify (signed by `signingKey`) and Finished, then records what the client does.
 */
export function createWrongKeyServer(options: WrongKeyServerOptions): WrongKeyServer {
  const curve = options.signingKey.asymmetricKeyDetails?.namedCurve;
  const signature = curve === undefined ? undefined : SCHEMES[curve];
  if (options.signingKey.type !== 'private' || !signature) throw new TypeError('signingKey must be an ECDSA P-256 or P-384 private key');
  const certificate = Buffer.from(options.certificate);
  const connections: HandshakeRecord[] = [];
  const closed: Promise<void>[] = [];

  const server = createServer((socket) => {
    const log: HandshakeRecord = { serverHelloSent: false, alerts: [], clientFinished: false, applicationData: Buffer.alloc(0) };
    connections.push(log);
    closed.push(new Promise((resolve) => socket.on('close', () => resolve())));
    socket.on('error', () => {}); // a client that aborts may reset the connection; the record says what happened
    serve(socket, log);
  });

  function serve(socket: Socket, log: HandshakeRecord) {
    let buffered = Buffer.alloc(0);
    let helloBytes = Buffer.alloc(0); // a ClientHello may span records
    let clientHandshake: TrafficKeys | undefined;
    let clientApplication: TrafficKeys | undefined;
    let expectedFinished: Buffer | undefined;
    let serverApplication: TrafficKeys | undefined;
    const fail = (reason: string) => {
      log.error = reason;
      socket.destroy();
    };

    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 5 && !socket.destroyed) {
        const length = buffered.readUInt16BE(3);
        if (buffered.length < 5 + length) return;
        const header = buffered.subarray(0, 5);
        const fragment = buffered.subarray(5, 5 + length);
        buffered = buffered.subarray(5 + length);
        const type = header[0]!;
        if (type === CONTENT.changeCipherSpec) continue; // middlebox compatibility (RFC 8446 §D.4)
        if (type === CONTENT.alert) {
          log.alerts.push({ level: fragment[0]!, description: fragment[1]!, encrypted: false });
          continue;
        }
        if (!clientHandshake) {
          if (type !== CONTENT.handshake) return fail(`record type ${type} before the ClientHello`);
          helloBytes = Buffer.concat([helloBytes, fragment]);
          if (helloBytes.length < 4 || helloBytes.length < 4 + helloBytes.readUIntBE(1, 3)) continue;
          if (helloBytes[0] !== HANDSHAKE.clientHello) return fail(`handshake message ${helloBytes[0]} instead of a ClientHello`);
          const keys = answerHello(helloBytes.subarray(0, 4 + helloBytes.readUIntBE(1, 3)));
          if (typeof keys === 'string') return fail(keys);
          ({ clientHandshake, clientApplication, expectedFinished } = keys);
          continue;
        }
        if (type !== CONTENT.applicationData) return fail(`plaintext record type ${type} after the ServerHello`);
        let inner: { type: number; data: Buffer };
        try {
          inner = (log.clientFinished ? clientApplication! : clientHandshake).open(header, fragment);
        } catch {
          return fail('a client record did not decrypt');
        }
        if (inner.type === CONTENT.alert) {
          log.alerts.push({ level: inner.data[0]!, description: inner.data[1]!, encrypted: true });
        } else if (!log.clientFinished) {
          // Before its Finished a client sends only handshake messages (no client certificate was asked for).
          if (inner.type !== CONTENT.handshake || inner.data[0] !== HANDSHAKE.finished) return fail(`client sent type ${inner.type} before its Finished`);
          const verifyData = inner.data.subarray(4);
          if (verifyData.length !== expectedFinished!.length || !timingSafeEqual(verifyData, expectedFinished!)) return fail('client Finished has a wrong MAC');
          log.clientFinished = true;
        } else if (inner.type === CONTENT.applicationData) {
          log.applicationData = Buffer.concat([log.applicationData, inner.data]);
          const answer = socket.writableEnded ? undefined : options.reply?.(inner.data);
          if (answer) {
            // One answer per connection, then close_notify: the client reads to the end.
            socket.end(Buffer.concat([serverApplication!.seal(CONTENT.applicationData, answer), serverApplication!.seal(CONTENT.alert, Buffer.of(1, 0))]));
          }
        }
      }
    });

    /** Sends the server's flight; returns the keys to read the client with, or why the hello cannot be answered. */
    function answerHello(clientHello: Buffer) {
      const hello = parseClientHello(clientHello.subarray(4));
      if (!hello.versions.includes(TLS13)) return 'ClientHello does not offer TLS 1.3';
      if (!hello.cipherSuites.includes(TLS_AES_128_GCM_SHA256)) return 'ClientHello does not offer TLS_AES_128_GCM_SHA256';
      if (!hello.x25519Share) return 'ClientHello has no x25519 key share';
      if (!hello.schemes.includes(signature!.scheme)) return `ClientHello does not offer signature scheme 0x${signature!.scheme.toString(16)}`;

      const { publicKey, privateKey } = generateKeyPairSync('x25519');
      const clientShare = createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, hello.x25519Share]), format: 'der', type: 'spki' });
      const shared = diffieHellman({ privateKey, publicKey: clientShare });
      const serverShare = publicKey.export({ type: 'spki', format: 'der' }).subarray(X25519_SPKI_PREFIX.length);
      const extensions = Buffer.concat([
        u16(EXTENSION.supportedVersions), vector16(u16(TLS13)),
        u16(EXTENSION.keyShare), vector16(Buffer.concat([u16(X25519), vector16(serverShare)])),
      ]);
      const serverHello = handshakeMessage(
        HANDSHAKE.serverHello,
        Buffer.concat([u16(0x0303), randomBytes(32), vector8(hello.sessionId), u16(TLS_AES_128_GCM_SHA256), u8(0), vector16(extensions)]),
      );

      // Key schedule (RFC 8446 §7.1) without a PSK.
      const zeros = Buffer.alloc(32);
      const emptyHash = sha256(Buffer.alloc(0));
      const early = hmac(zeros, zeros);
      const handshakeSecret = hmac(expandLabel(early, 'derived', emptyHash, 32), shared);
      let transcript = Buffer.concat([clientHello, serverHello]);
      const clientHandshakeSecret = expandLabel(handshakeSecret, 'c hs traffic', sha256(transcript), 32);
      const serverHandshakeSecret = expandLabel(handshakeSecret, 's hs traffic', sha256(transcript), 32);

      const encryptedExtensions = handshakeMessage(HANDSHAKE.encryptedExtensions, vector16(Buffer.alloc(0)));
      // certificate_request_context (empty), then one CertificateEntry with no extensions.
      const certificateMessage = handshakeMessage(HANDSHAKE.certificate, Buffer.concat([vector8(Buffer.alloc(0)), vector24(Buffer.concat([vector24(certificate), vector16(Buffer.alloc(0))]))]));
      transcript = Buffer.concat([transcript, encryptedExtensions, certificateMessage]);
      // RFC 8446 §4.4.3: 64 spaces, the context string, a zero byte, the transcript hash.
      const signed = Buffer.concat([Buffer.alloc(64, 0x20), Buffer.from('TLS 1.3, server CertificateVerify'), u8(0), sha256(transcript)]);
      const certificateVerify = handshakeMessage(HANDSHAKE.certificateVerify, Buffer.concat([u16(signature!.scheme), vector16(sign(signature!.hash, signed, options.signingKey))]));
      transcript = Buffer.concat([transcript, certificateVerify]);
      const serverFinished = handshakeMessage(HANDSHAKE.finished, hmac(expandLabel(serverHandshakeSecret, 'finished', Buffer.alloc(0), 32), sha256(transcript)));
      transcript = Buffer.concat([transcript, serverFinished]);

      const master = hmac(expandLabel(handshakeSecret, 'derived', emptyHash, 32), zeros);
      serverApplication = new TrafficKeys(expandLabel(master, 's ap traffic', sha256(transcript), 32));
      const keys = {
        clientHandshake: new TrafficKeys(clientHandshakeSecret),
        clientApplication: new TrafficKeys(expandLabel(master, 'c ap traffic', sha256(transcript), 32)),
        // The client's Finished MACs the transcript up to the server's Finished (§4.4.4).
        expectedFinished: hmac(expandLabel(clientHandshakeSecret, 'finished', Buffer.alloc(0), 32), sha256(transcript)),
      };
      socket.write(
        Buffer.concat([
          record(CONTENT.handshake, serverHello),
          record(CONTENT.changeCipherSpec, u8(1)),
          new TrafficKeys(serverHandshakeSecret).seal(CONTENT.handshake, Buffer.concat([encryptedExtensions, certificateMessage, certificateVerify, serverFinished])),
        ]),
      );
      log.serverHelloSent = true;
      return keys;
    }
  }

  return { server, connections, settled: () => Promise.all(closed).then(() => undefined) };
}
