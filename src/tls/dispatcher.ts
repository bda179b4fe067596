import { connect as tlsConnect } from 'node:tls';
import type { Dispatcher } from 'undici-types';
import { attest, attestedTlsOptions, clientPeers, collectSessions, SessionCache, type AttestedClientOptions } from './connect.js';

/** Options of {@link createAttestedDispatcher}: what the server must show, plus undici `Agent` options. */
export interface AttestedDispatcherOptions extends AttestedClientOptions {
  /** Passed to undici's `Agent` (connections, keepAliveTimeout…); `connect` is ours. */
  agentOptions?: Record<string, unknown>;
  /** TLS sessions kept for resumption, one per origin. Default 100; 0 turns resumption off. */
  maxCachedSessions?: number;
}

interface UndiciModule {
  Agent: new (options: Record<string, unknown>) => Dispatcher;
}

/**
 * A dispatcher for `fetch` (undici) that checks every new connection as
 * {@link createAttestedHttpsAgent} does, inside undici's `connect`: the request is written only
 * to a socket whose attested certificate passed. Needs the `undici` package (an optional peer
 * dependency): Node's built-in `fetch` runs on undici and takes its `dispatcher`, but Node does
 * not export undici's `Agent`. Async because undici is loaded only when a dispatcher is made.
 *
 * @example
 * ```ts
 * import { createAttestedDispatcher } from 'nitro-enclave-sdk/tls';
 *
 * const dispatcher = await createAttestedDispatcher({ expectedPcrs: { 0: pcr0Hex } });
 * const res = await fetch('https://enclave.example:8443/hello', { dispatcher } as RequestInit);
 * ```
 */
export async function createAttestedDispatcher(options: AttestedDispatcherOptions): Promise<Dispatcher> {
  const peers = clientPeers(options);
  const sessionCheck = options.sessionCheck ?? false;
  const maxSessions = options.maxCachedSessions ?? 100;
  if (!Number.isInteger(maxSessions) || maxSessions < 0) throw new TypeError('maxCachedSessions must be a non-negative integer');
  if (options.agentOptions !== undefined && (typeof options.agentOptions !== 'object' || options.agentOptions === null)) throw new TypeError('agentOptions must be an object');
  let undici: UndiciModule;
  try {
    undici = (await import('undici')) as unknown as UndiciModule;
  } catch (err) {
    throw new Error('createAttestedDispatcher needs the undici package (npm install undici): Node runs fetch on undici but does not export its Agent', { cause: err });
  }
  const sessions = new SessionCache(maxSessions);

  type ConnectCallback = (err: Error | null, socket: unknown) => void;
  function connect(opts: { hostname: string; host?: string; port: string | number; servername?: string | null }, callback: ConnectCallback): void {
    const origin = `${opts.hostname}:${opts.port}`;
    const session = sessions.offer(origin);
    const socket = tlsConnect({
      ...attestedTlsOptions(options), // per connection: the identity's certificate changes at each re-attestation
      host: opts.hostname,
      port: Number(opts.port),
      ALPNProtocols: ['http/1.1'],
      ...(opts.servername ? { servername: opts.servername } : {}),
      ...(session ? { session } : {}),
    });
    collectSessions(socket);
    sessions.offered(socket, origin);
    attest(socket, peers, { sessionCheck, host: opts.host ?? opts.hostname, sessions, origin }).then(
      () => callback(null, socket),
      (err: Error) => {
        sessions.forget(origin);
        callback(err, null);
      },
    );
  }
  return new undici.Agent({ ...(options.agentOptions ?? {}), connect });
}
