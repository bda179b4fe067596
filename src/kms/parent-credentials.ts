import { memoize } from '@smithy/property-provider';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { NitroEnclaveError } from '../errors.js';
import { PieceBuffer } from '../internal/pieces.js';
import { CREDENTIALS_REQUEST, FILE_NAME, MAX_ANSWER_BYTES, NOT_FOUND, PARENT_CREDENTIALS_PORT, fileRequest, type WireCredentials, type WireFile } from '../internal/parent-wire.js';
import { connectSocket, VMADDR_CID_PARENT, type SocketAddress, type VsockSocket } from '../vsock/connect.js';

export { PARENT_CREDENTIALS_PORT };

/** Options of {@link fetchParentFile}: where the parent's credentials server listens and how long to wait. */
export interface ParentFileOptions {
  /** Where the parent serves credentials and files. Default vsock CID 3, port 8002. */
  address?: SocketAddress;
  /** Milliseconds to wait for the connection, and again for the answer. Default 5000. */
  timeoutMs?: number;
}

/** Options of {@link fromParentCredentials}: where the parent's credentials server listens, how long to wait, when to refresh. */
export interface ParentCredentialsOptions extends ParentFileOptions {
  /** Fetch new credentials this many milliseconds before the current ones expire. Default 5 minutes. */
  refreshBeforeMs?: number;
  /** The time the expiry is compared with. Default `() => new Date()`. */
  clock?: () => Date;
}

const defaultAddress = (): SocketAddress => ({ family: 'vsock', cid: VMADDR_CID_PARENT, port: PARENT_CREDENTIALS_PORT });

function millis(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw new TypeError(`${name} must be a non-negative integer of milliseconds`);
  return value;
}

function readAnswer(socket: VsockSocket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    // Copied into fixed pieces: a parent dripping one byte per write costs the enclave a byte each, not a Buffer each.
    const answer = new PieceBuffer();
    let size = 0;
    const timer = setTimeout(() => socket.destroy(new NitroEnclaveError('ERR_PARENT_TIMEOUT', `the parent's credentials server did not answer within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_ANSWER_BYTES) socket.destroy(new NitroEnclaveError('ERR_PARENT_PROTOCOL', `the parent's answer is over ${MAX_ANSWER_BYTES} bytes`));
      else answer.push(d);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.end(); // we asked with a half-open socket: close our side too
      if (size === 0) reject(new NitroEnclaveError('ERR_PARENT_REFUSED', "the parent's credentials server closed the connection without an answer: was this enclave's CID refused? (see the server's log)"));
      else resolve(answer.take().toString('utf8'));
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (err instanceof NitroEnclaveError && err.code.startsWith('ERR_PARENT_')) return reject(err);
      // A refusing server closes at once: our request then meets EPIPE/ECONNRESET, or the relay reports a reset.
      const why = err instanceof NitroEnclaveError ? err.code : ((err as NodeJS.ErrnoException).code ?? err.name);
      reject(new NitroEnclaveError('ERR_PARENT_REFUSED', `the parent's credentials server closed the connection (${why}): was this enclave's CID refused? (see the server's log)`, { cause: err }));
    });
  });
}

/** One request line to the parent's credentials server, one JSON answer back (parsed; never quoted in errors). */
async function ask(address: SocketAddress, request: string, timeoutMs: number): Promise<unknown> {
  let socket: VsockSocket;
  try {
    socket = await connectSocket(address, { timeoutMs, allowHalfOpen: true });
  } catch (err) {
    if (!(err instanceof NitroEnclaveError)) throw err; // a malformed address: TypeError
    if (err.code === 'ERR_VSOCK_TIMEOUT') throw new NitroEnclaveError('ERR_PARENT_TIMEOUT', `the parent's credentials server did not accept the connection within ${timeoutMs} ms`, { cause: err });
    throw new NitroEnclaveError('ERR_PARENT_UNREACHABLE', `cannot reach the parent's credentials server: ${err.message}`, { cause: err });
  }
  socket.write(`${request}\n`);
  const text = await readAnswer(socket, timeoutMs);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // No `cause`: JSON.parse quotes the input, which may hold a secret.
    throw new NitroEnclaveError('ERR_PARENT_PROTOCOL', 'the parent answered with something that is not JSON');
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Fetches a file the parent offers (e.g. the TSK's CiphertextBlob, which cannot
 * be baked into the enclave image: the image's PCR0 must be known before the
 * key policy, and the blob is made after it). The parent is not trusted with
 * it: a wrong blob fails at KMS.
 *
 * @example
 * ```ts
 * const ciphertextBlob = await fetchParentFile('tsk');
 * ```
 */
export async function fetchParentFile(name: string, options: ParentFileOptions = {}): Promise<Uint8Array> {
  if (typeof name !== 'string' || !FILE_NAME.test(name)) throw new TypeError('file name must be 1-64 characters of [A-Za-z0-9_.-]');
  const timeoutMs = millis(options.timeoutMs, 5000, 'timeoutMs');
  const answer = (await ask(options.address ?? defaultAddress(), fileRequest(name), timeoutMs)) as WireFile;
  if (isObject(answer) && answer.Error === NOT_FOUND) throw new NitroEnclaveError('ERR_PARENT_NOT_FOUND', `the parent does not offer file "${name}"`);
  if (!isObject(answer) || typeof answer.Data !== 'string' || !BASE64.test(answer.Data)) throw new NitroEnclaveError('ERR_PARENT_PROTOCOL', `the parent's answer for file "${name}" has no base64 Data`);
  return new Uint8Array(Buffer.from(answer.Data, 'base64'));
}

function credentialsOf(wire: unknown): AwsCredentialIdentity {
  const w = wire as Partial<WireCredentials>;
  const text = (v: unknown) => typeof v === 'string' && v.length > 0;
  if (!isObject(w) || !text(w.AccessKeyId) || !text(w.SecretAccessKey)) throw new NitroEnclaveError('ERR_PARENT_PROTOCOL', "the parent's answer holds no credentials");
  if (w.SessionToken !== undefined && !text(w.SessionToken)) throw new NitroEnclaveError('ERR_PARENT_PROTOCOL', "the parent's SessionToken is not a string");
  const expiration = w.Expiration === undefined ? undefined : new Date(typeof w.Expiration === 'string' ? w.Expiration : Number.NaN);
  if (expiration && Number.isNaN(expiration.getTime())) throw new NitroEnclaveError('ERR_PARENT_PROTOCOL', "the parent's Expiration is not a date");
  return { accessKeyId: w.AccessKeyId!, secretAccessKey: w.SecretAccessKey!, ...(w.SessionToken ? { sessionToken: w.SessionToken } : {}), ...(expiration ? { expiration } : {}) };
}

/**
 * A credential provider for code inside the enclave (which has no instance
 * metadata service): it asks the parent's credentials server over vsock for
 * the instance role's temporary credentials, caches them, and fetches new ones
 * `refreshBeforeMs` before they expire. Concurrent callers share one fetch
 * (`memoize` from `@smithy/property-provider`, as the AWS SDK's own providers).
 * Credentials without an expiry are kept for the provider's lifetime.
 *
 * @example
 * ```ts
 * const tsk = await getTrustedSessionKey({ keyId: pinnedKeyArn, region, ciphertextBlobPath, credentials: fromParentCredentials() });
 * ```
 */
export function fromParentCredentials(options: ParentCredentialsOptions = {}): AwsCredentialIdentityProvider {
  const address = options.address ?? defaultAddress();
  const refreshBeforeMs = millis(options.refreshBeforeMs, 5 * 60_000, 'refreshBeforeMs');
  const timeoutMs = millis(options.timeoutMs, 5000, 'timeoutMs');
  const clock = options.clock ?? (() => new Date());
  const cached = memoize(
    async () => credentialsOf(await ask(address, CREDENTIALS_REQUEST, timeoutMs)),
    (c) => c.expiration!.getTime() - refreshBeforeMs <= clock().getTime(),
    (c) => c.expiration !== undefined,
  );
  return () => cached();
}
