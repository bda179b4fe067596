import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { NitroEnclaveError } from '../errors.js';
import { connectSocket, VMADDR_CID_PARENT, type SocketAddress, type VsockSocket } from '../vsock/connect.js';
import { listenSocket, type StreamListener } from '../vsock/listen.js';

/** Port the parent's credentials server listens on by default (vsock). */
export const PARENT_CREDENTIALS_PORT = 8002;
const MAX_RESPONSE = 64 * 1024;

interface WireCredentials {
  AccessKeyId: string;
  SecretAccessKey: string;
  SessionToken?: string;
  Expiration?: string;
}

/** Options of {@link fromParentCredentials} and {@link fetchParentFile}: where the parent's credentials server listens and how long to wait. */
export interface ParentCredentialsOptions {
  /** Where the parent serves credentials. Default vsock CID 3, port 8002. */
  address?: SocketAddress;
  /** Refresh this long before expiry (ms). Default 5 minutes. */
  refreshBefore?: number;
  timeout?: number;
  clock?: () => Date;
}

function readAll(socket: VsockSocket, timeout: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => socket.destroy(new NitroEnclaveError('ERR_VSOCK_TIMEOUT', 'the credentials server did not answer in time')), timeout);
    socket.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_RESPONSE) socket.destroy(new NitroEnclaveError('ERR_KMS_PROTOCOL', 'credentials response too large'));
      else chunks.push(d);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.end(); // we asked with a half-open socket: close our side too
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      // A refusing server closes at once: our request then meets EPIPE/ECONNRESET. Keep it coded.
      if (err instanceof NitroEnclaveError) reject(err);
      else reject(new NitroEnclaveError('ERR_VSOCK_RESET', `the parent's bootstrap server closed the connection (${(err as NodeJS.ErrnoException).code ?? err.name}): was this enclave refused?`, { cause: err }));
    });
  });
}

/** One request line to the parent's bootstrap server, one JSON answer back. */
async function ask(address: SocketAddress, request: string, timeout: number): Promise<string> {
  const socket = await connectSocket(address, { timeout, allowHalfOpen: true });
  socket.write(`${request}\n`);
  return readAll(socket, timeout);
}

/**
 * Fetches a file the parent offers (e.g. the TSK's CiphertextBlob, which cannot
 * be baked into the enclave image: the image's PCR0 must be known before the
 * key policy, and the blob is made after it).
 *
 * @example
 * ```ts
 * const ciphertextBlob = await fetchParentFile('tsk');
 * ```
 */
export async function fetchParentFile(name: string, options: { address?: SocketAddress; timeout?: number } = {}): Promise<Uint8Array> {
  if (!/^[\w.-]{1,64}$/.test(name)) throw new TypeError('file name must be 1-64 characters of [A-Za-z0-9_.-]');
  const address = options.address ?? { family: 'vsock', cid: VMADDR_CID_PARENT, port: PARENT_CREDENTIALS_PORT };
  const text = await ask(address, `GET file ${name}`, options.timeout ?? 5000);
  let answer: { Data?: string; Error?: string };
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    throw new NitroEnclaveError('ERR_KMS_PROTOCOL', 'the parent answered with something that is not JSON (was this enclave refused?)');
  }
  if (typeof answer.Data !== 'string') throw new NitroEnclaveError('ERR_KMS_PROTOCOL', `the parent does not offer file "${name}" (${answer.Error ?? 'no data'})`);
  return new Uint8Array(Buffer.from(answer.Data, 'base64'));
}

/**
 * A credential provider for code inside the enclave (which has no instance
 * metadata service): it asks the parent's credentials server over vsock for
 * the instance role's temporary credentials, caches them, and refreshes
 * `refreshBefore` ms before they expire. Concurrent callers share one fetch.
 *
 * @example
 * ```ts
 * const tsk = await getTrustedSessionKey({ keyId: pinnedKeyArn, region, ciphertextBlobPath, credentials: fromParentCredentials() });
 * ```
 */
export function fromParentCredentials(options: ParentCredentialsOptions = {}): AwsCredentialIdentityProvider {
  const address = options.address ?? { family: 'vsock', cid: VMADDR_CID_PARENT, port: PARENT_CREDENTIALS_PORT };
  const refreshBefore = options.refreshBefore ?? 5 * 60_000;
  const timeout = options.timeout ?? 5000;
  const clock = options.clock ?? (() => new Date());
  let current: AwsCredentialIdentity | undefined;
  let pending: Promise<AwsCredentialIdentity> | undefined;

  async function fetchOnce(): Promise<AwsCredentialIdentity> {
    const text = await ask(address, 'GET credentials', timeout);
    let wire: WireCredentials;
    try {
      wire = JSON.parse(text) as WireCredentials;
    } catch {
      throw new NitroEnclaveError('ERR_KMS_AUTHENTICATION', 'the credentials server answered with something that is not JSON (was this enclave refused?)');
    }
    if (typeof wire.AccessKeyId !== 'string' || typeof wire.SecretAccessKey !== 'string') throw new NitroEnclaveError('ERR_KMS_AUTHENTICATION', 'the credentials server answered without credentials');
    return {
      accessKeyId: wire.AccessKeyId,
      secretAccessKey: wire.SecretAccessKey,
      ...(wire.SessionToken ? { sessionToken: wire.SessionToken } : {}),
      ...(wire.Expiration ? { expiration: new Date(wire.Expiration) } : {}),
    };
  }

  return async () => {
    const fresh = current && (!current.expiration || current.expiration.getTime() - refreshBefore > clock().getTime());
    if (fresh) return current!;
    pending ??= fetchOnce().finally(() => (pending = undefined));
    current = await pending;
    return current;
  };
}

/** Options of {@link serveParentCredentials} (parent side): where to listen, which credentials and files to serve, and to whom. */
export interface CredentialsServerOptions {
  /** Where to listen. Default vsock any-CID, port 8002. */
  address?: SocketAddress;
  /** The only enclave CID allowed to receive credentials (vsock). */
  enclaveCid?: number;
  /** Where credentials come from. Default: the AWS SDK chain (the instance role via IMDS). */
  credentials?: AwsCredentialIdentityProvider;
  /**
   * Decides whether a peer may receive credentials. Default: its vsock CID
   * equals `enclaveCid`. On a `unix` address there is no CID: any local
   * process that can open the socket connects, so only `allowPeer` decides
   * (the log says so).
   */
  allowPeer?: (socket: VsockSocket) => boolean;
  /** Files offered to the enclave by name (e.g. `{ tsk: ciphertextBlob }`), fetched with fetchParentFile(). */
  files?: Record<string, Uint8Array>;
  /** Called with a line at start and for each connection; never receives secrets, and states only the checks it made. */
  log?: (line: string) => void;
}

function readRequestLine(socket: VsockSocket, timeout: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('no request')), timeout);
    socket.setEncoding('utf8');
    socket.on('data', function onData(chunk: string) {
      text += chunk;
      const at = text.indexOf('\n');
      if (at >= 0 || text.length > 256) {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(text.slice(0, at >= 0 ? at : 256).trim());
      }
    });
    socket.on('end', () => {
      clearTimeout(timer);
      resolve(text.trim());
    });
  });
}

/**
 * The parent side: serves the instance role's temporary credentials to the
 * enclave over vsock, one JSON answer per connection, only to `enclaveCid`
 * (the peer CID is checked on each connection). On a `unix` address (local
 * tests, or a proxy you run yourself) there is no CID: any local process
 * that can open the socket may connect, and the log says so.
 *
 * @example
 * ```ts
 * const server = await serveParentCredentials({ enclaveCid: 16, files: { tsk: readFileSync('tsk.ciphertext') } });
 * process.once('SIGTERM', () => server.close());
 * ```
 */
export async function serveParentCredentials(options: CredentialsServerOptions): Promise<StreamListener> {
  const address = options.address ?? { family: 'vsock', cid: 0xffffffff, port: PARENT_CREDENTIALS_PORT };
  if (options.allowPeer === undefined && (options.enclaveCid === undefined || !Number.isInteger(options.enclaveCid) || options.enclaveCid < 3)) {
    throw new TypeError('enclaveCid (the CID given to nitro-cli run-enclave, 3 or more) is required');
  }
  const allow = options.allowPeer ?? ((s: VsockSocket) => s.peerCid === options.enclaveCid);
  const unix = address.family === 'unix';
  // What the log may claim: a CID check only when the built-in one ran on a vsock peer.
  const checked = options.allowPeer === undefined && !unix;
  const whoOf = (s: VsockSocket) =>
    unix ? 'a local process (unix socket: no CID, no check)' : checked ? `CID ${s.peerCid} (peer CID checked)` : `CID ${s.peerCid ?? '(unknown)'} (accepted by allowPeer; no built-in CID check)`;
  let source: AwsCredentialIdentityProvider;
  if (options.credentials) source = options.credentials;
  else {
    const { defaultProvider } = await import('@aws-sdk/credential-provider-node');
    source = defaultProvider();
  }
  const log = options.log ?? (() => {});
  const files = options.files ?? {};
  if (unix) {
    log(
      options.allowPeer
        ? `listening on unix:${address.path}: any local process that can open this socket may connect and receive the credentials; a unix socket has no CID, so no CID check is made`
        : `listening on unix:${address.path}: a unix socket has no CID, so enclaveCid ${options.enclaveCid} can never match and every connection will be refused (pass allowPeer to accept local processes)`,
    );
  } else if (checked) log(`listening on vsock port ${address.port}: credentials only to CID ${options.enclaveCid} (each connection's peer CID is checked)`);
  else log(`listening on vsock port ${address.port}: peers accepted by allowPeer (no built-in CID check)`);
  const open = new Set<VsockSocket>();
  const listener = listenSocket(address, (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    if (!allow(socket)) {
      log(unix ? 'refused a local process (unix socket)' : checked ? `refused peer CID ${socket.peerCid ?? '(unknown)'} (expected ${options.enclaveCid})` : `refused peer CID ${socket.peerCid ?? '(unknown)'} (allowPeer)`);
      socket.destroy();
      return;
    }
    const who = whoOf(socket);
    readRequestLine(socket, 5000).then(
      (request) => {
        if (request === 'GET credentials') {
          source().then(
            (c) => {
              const wire: WireCredentials = { AccessKeyId: c.accessKeyId, SecretAccessKey: c.secretAccessKey, ...(c.sessionToken ? { SessionToken: c.sessionToken } : {}), ...(c.expiration ? { Expiration: c.expiration.toISOString() } : {}) };
              socket.end(JSON.stringify(wire));
              log(`served credentials for ${c.accessKeyId.slice(0, 4)}… to ${who}${c.expiration ? `, expiring ${c.expiration.toISOString()}` : ''}`);
            },
            (err: Error) => {
              log(`could not obtain credentials: ${err.name}`);
              socket.destroy();
            },
          );
          return;
        }
        const file = /^GET file ([\w.-]{1,64})$/.exec(request)?.[1];
        if (file && Object.hasOwn(files, file)) {
          socket.end(JSON.stringify({ Name: file, Data: Buffer.from(files[file]!).toString('base64') }));
          log(`served file ${file} (${files[file]!.length} bytes) to ${who}`);
          return;
        }
        socket.end(JSON.stringify({ Error: 'NotFound' }));
        log(`unknown request from ${who}`);
      },
      () => socket.destroy(),
    );
  });
  return {
    port: listener.port,
    close() {
      listener.close();
      for (const socket of open) socket.destroy();
    },
  };
}
