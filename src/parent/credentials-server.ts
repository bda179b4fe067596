import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { CREDENTIALS_REQUEST, MAX_REQUEST_BYTES, NOT_FOUND, PARENT_CREDENTIALS_PORT, requestedFile, type WireCredentials, type WireFile } from '../internal/parent-wire.js';
import type { SocketAddress, VsockSocket } from '../vsock/connect.js';
import { listenSocket, type StreamListener } from '../vsock/listen.js';

/** Options of {@link serveParentCredentials} (parent side): where to listen, which credentials and files to serve, and to whom. */
export interface CredentialsServerOptions {
  /** Where to listen. Default vsock any-CID, port 8002. */
  address?: SocketAddress;
  /**
   * The only enclave CID allowed to receive credentials (vsock). The native listener refuses
   * every other peer on the address `accept()` reports, before the relay starts; the CID is
   * checked again on each connection.
   */
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
  /** The listening transport. Default {@link listenSocket}; tests pass one that listens on an AF_UNIX stand-in. */
  listen?: typeof listenSocket;
}

function readRequestLine(socket: VsockSocket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('no request')), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', function onData(chunk: string) {
      text += chunk;
      const at = text.indexOf('\n');
      if (at >= 0 || text.length > MAX_REQUEST_BYTES) {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(text.slice(0, at >= 0 ? at : MAX_REQUEST_BYTES).trim());
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
 * (the native listener refuses other CIDs before the relay starts, and the
 * peer CID is checked again on each connection). On a `unix` address (local
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
  const onConnection = (socket: VsockSocket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    // Defence in depth: the native listener already refused other CIDs when `checked`.
    if (!allow(socket)) {
      log(unix ? 'refused a local process (unix socket)' : checked ? `refused peer CID ${socket.peerCid ?? '(unknown)'} (expected ${options.enclaveCid})` : `refused peer CID ${socket.peerCid ?? '(unknown)'} (allowPeer)`);
      socket.destroy();
      return;
    }
    const who = whoOf(socket);
    readRequestLine(socket, 5000).then(
      (request) => {
        if (request === CREDENTIALS_REQUEST) {
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
        const file = requestedFile(request);
        if (file && Object.hasOwn(files, file)) {
          socket.end(JSON.stringify({ Name: file, Data: Buffer.from(files[file]!).toString('base64') } satisfies WireFile));
          log(`served file ${file} (${files[file]!.length} bytes) to ${who}`);
          return;
        }
        socket.end(JSON.stringify({ Error: NOT_FOUND } satisfies WireFile));
        log(`unknown request from ${who}`);
      },
      () => socket.destroy(),
    );
  };
  const listen = options.listen ?? listenSocket;
  const listener = listen(address, onConnection, {
    // The built-in check also runs in the native accept thread: a refused peer never gets a relay.
    ...(checked ? { allowedCids: [options.enclaveCid!] } : {}),
    onError: (err) => log(err.message), // refusals (ERR_VSOCK_PEER_REFUSED) and accept failures; never secrets
  });
  return {
    port: listener.port,
    close() {
      listener.close();
      for (const socket of open) socket.destroy();
    },
  };
}
