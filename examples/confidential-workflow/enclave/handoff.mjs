// A step's result handed from one agent enclave to another over mutually attested TLS, through a
// parent that relays every byte. Temporal carries only a sealed *receipt* (transfer id and digest);
// the result itself never reaches Temporal, not even sealed.
//
// Each side checks the other's image during the handshake (nitro-enclave-sdk/tls): the sender
// sends nothing to an enclave that is not the receiving image, the receiver reads nothing from one
// that is not the sending image. What binds the result to its step (so the parent cannot swap,
// replay or redirect it) is described in the example's README, "Two enclaves".
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { connectAttested, createAttestedPeerVerifier, createAttestedTlsServer, NitroEnclaveError } from 'nitro-enclave-sdk/tls';
import { listenSocket } from 'nitro-enclave-sdk/vsock';

/** Version of the handoff message (the header line's `v`). */
export const HANDOFF_VERSION = 1;
/** Largest result a receiver accepts (bytes): it is held in enclave memory until redeemed. */
export const DEFAULT_MAX_RESULT_BYTES = 16 * 1024 * 1024;
const MAX_HEADER_BYTES = 4096;

/** A refused or failed handoff. `code` is one of the ERR_HANDOFF_* codes of the README, or the ERR_TLS_ATTESTATION_* code of a refused peer. */
export class HandoffError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = 'HandoffError';
    this.code = code;
  }
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest();
const sameBinding = (a, b) => a.workflowId === b.workflowId && a.chainId === b.chainId && a.activity === b.activity && a.seq === b.seq && a.producer === b.producer;
const bindingOf = (b) => ({ workflowId: b.workflowId, chainId: b.chainId, activity: b.activity, seq: b.seq, producer: b.producer });

/**
 * The receiving enclave: a mutually attested TLS server on `listen` (vsock in the enclave; an
 * AF_UNIX stand-in in tests, same native listener). Admits only clients whose attested certificate
 * shows `senders.expectedPcrs`, and from them only results for the steps in `accepts` (from the
 * image, like steps.mjs). Stores each result under a fresh random transfer id and answers with the
 * receipt `{ transfer, sha256 }`. `redeem(receipt, context)` gives the result to the step it was
 * sent for, and to no other.
 */
export function startHandoffReceiver({ identity, senders, accepts, listen, maxResultBytes = DEFAULT_MAX_RESULT_BYTES, maxTransfers = 256, ttlMs = 15 * 60_000, idleTimeoutMs = 30_000, clock = () => Date.now(), onRefused = () => {} }) {
  const transfers = new Map();
  const refused = [];
  const evict = () => {
    const now = clock();
    for (const [id, t] of transfers) if (now - t.at > ttlMs) transfers.delete(id);
  };
  const server = createAttestedTlsServer(
    {
      identity,
      clients: senders,
      onRefused: (err) => {
        refused.push(err);
        onRefused(err);
      },
    },
    (socket, sender) => {
      // Only here has the sender's attestation passed: until then no byte of the stream was read.
      const fail = (code, message) => {
        refused.push(new HandoffError(code, message));
        socket.destroy();
      };
      let buffered = Buffer.alloc(0);
      let header = null;
      socket.on('error', () => {});
      // A relay that stalls mid-result must not make the enclave hold its bytes forever.
      socket.setTimeout(idleTimeoutMs, () => fail('ERR_HANDOFF_TIMEOUT', `no byte for ${idleTimeoutMs} ms`));
      socket.on('data', (chunk) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (header === null) {
          const end = buffered.indexOf(0x0a);
          if (end < 0) return buffered.length > MAX_HEADER_BYTES ? fail('ERR_HANDOFF_MALFORMED', 'the handoff header is too long') : undefined;
          try {
            header = JSON.parse(buffered.subarray(0, end).toString('utf8'));
          } catch {
            return fail('ERR_HANDOFF_MALFORMED', 'the handoff header is not JSON');
          }
          buffered = buffered.subarray(end + 1);
          if (header?.v !== HANDOFF_VERSION || !Number.isSafeInteger(header.bytes) || header.bytes < 0 || typeof header.workflowId !== 'string' || typeof header.chainId !== 'string' || !Number.isSafeInteger(header.seq)) {
            return fail('ERR_HANDOFF_MALFORMED', 'the handoff header lacks its fields');
          }
          if (!accepts.some((a) => a.activity === header.activity && a.producer === header.producer)) {
            return fail('ERR_HANDOFF_ROUTE', `this enclave accepts no result of ${JSON.stringify(header.producer)} for ${JSON.stringify(header.activity)}`);
          }
          if (header.bytes > maxResultBytes) return fail('ERR_HANDOFF_TOO_LARGE', `a result of ${header.bytes} bytes is over ${maxResultBytes}`);
          evict();
          if (transfers.size >= maxTransfers) return fail('ERR_HANDOFF_TOO_LARGE', `${maxTransfers} transfers are waiting to be redeemed`);
        }
        if (buffered.length < header.bytes) return;
        if (buffered.length > header.bytes) return fail('ERR_HANDOFF_MALFORMED', 'bytes after the result');
        socket.removeAllListeners('data');
        const result = new Uint8Array(buffered);
        const transfer = randomBytes(16).toString('hex');
        const digest = sha256(result);
        transfers.set(transfer, { binding: bindingOf(header), result, digest, at: clock(), senderPcr0: sender.pcrsHex[0] });
        socket.end(`${JSON.stringify({ transfer, sha256: digest.toString('hex') })}\n`);
      });
    },
  );
  const listener = listenSocket(listen, (socket) => server.emit('connection', socket));
  return {
    /** Refusals so far (attestation refusals with their ERR_TLS_ATTESTATION_* code, and ERR_HANDOFF_* ones). */
    refused,
    /** Results waiting to be redeemed. */
    get pending() {
      return transfers.size;
    },
    /**
     * The result a receipt names, for the step `context` is running (its authenticated binding: the
     * receipt arrived sealed for exactly this step). The result stays until it expires, so that
     * Temporal's retry of the same step finds it; any other step, workflow or run is refused.
     */
    redeem(receipt, context) {
      evict();
      const t = typeof receipt?.transfer === 'string' ? transfers.get(receipt.transfer) : undefined;
      if (!t) throw new HandoffError('ERR_HANDOFF_UNKNOWN', 'no result waits under this transfer id (never sent, or expired)');
      if (!sameBinding(t.binding, context)) throw new HandoffError('ERR_HANDOFF_MISMATCH', 'the result was sent for another step, workflow or run');
      const digest = typeof receipt.sha256 === 'string' && /^[0-9a-f]{64}$/.test(receipt.sha256) ? Buffer.from(receipt.sha256, 'hex') : Buffer.alloc(32);
      if (!timingSafeEqual(digest, t.digest)) throw new HandoffError('ERR_HANDOFF_MISMATCH', 'the receipt names other bytes than the ones received');
      return t.result.slice();
    },
    close() {
      listener.close();
      transfers.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The sending side: a reusable sender for one receiving image. `connect()` resolves to the loopback
 * `{ host, port }` of this enclave's TCP-to-vsock forwarder towards the parent. Each `send` opens one
 * mutually attested connection (this enclave's `identity` on our side; `receivers.expectedPcrs` on
 * theirs: checked before a byte is written), sends the result for `binding`, and resolves to the
 * receiver's receipt after checking its digest. Never hangs: `timeoutMs` and `signal` end it.
 */
export function createHandoffSender({ identity, receivers, connect, timeoutMs = 30_000 }) {
  const peers = createAttestedPeerVerifier(receivers);
  return {
    async send(binding, result, { signal } = {}) {
      const target = await connect();
      let socket;
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(new HandoffError('ERR_HANDOFF_TIMEOUT', `no receipt within ${timeoutMs} ms`)), timeoutMs);
      const onAbort = () => abort.abort(new HandoffError('ERR_HANDOFF_TIMEOUT', 'the step was cancelled'));
      signal?.addEventListener('abort', onAbort, { once: true });
      const aborted = new Promise((_, reject) => abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true }));
      aborted.catch(() => {});
      try {
        const connecting = connectAttested({ host: target.host, port: target.port, identity, peers, expectedPcrs: receivers.expectedPcrs });
        // Cut off by the timeout: whatever the handshake still brings is closed unused.
        connecting.then(({ socket: late }) => abort.signal.aborted && late.destroy(), () => {});
        ({ socket } = await Promise.race([connecting, aborted]));
        socket.on('error', () => {});
        // Only now, the receiver's image checked, does a byte of the step leave this enclave.
        socket.write(`${JSON.stringify({ v: HANDOFF_VERSION, ...bindingOf(binding), bytes: result.length })}\n`);
        socket.write(result);
        const answer = await Promise.race([readAll(socket), aborted]);
        const receipt = parseReceipt(answer);
        if (!timingSafeEqual(Buffer.from(receipt.sha256, 'hex'), sha256(result))) throw new HandoffError('ERR_HANDOFF_MISMATCH', 'the receipt names other bytes than the ones sent');
        return receipt;
      } catch (err) {
        if (err instanceof NitroEnclaveError || err instanceof HandoffError) throw err;
        // The parent cut or refused the relay: a coded failure, never a raw socket error or a hang.
        throw new HandoffError('ERR_HANDOFF_CUT', `the connection to the receiving enclave ended before its receipt (${err?.code ?? err?.message ?? err})`, { cause: err });
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket?.destroy();
      }
    },
  };
}

function readAll(socket) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    socket.on('data', (c) => chunks.push(c));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('close', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
  });
}

function parseReceipt(bytes) {
  let receipt;
  try {
    receipt = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new HandoffError('ERR_HANDOFF_CUT', 'the receiving enclave closed the connection without a receipt');
  }
  if (typeof receipt?.transfer !== 'string' || !/^[0-9a-f]{32}$/.test(receipt.transfer) || typeof receipt.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(receipt.sha256)) {
    throw new HandoffError('ERR_HANDOFF_MALFORMED', 'the receipt is not { transfer, sha256 }');
  }
  return { transfer: receipt.transfer, sha256: receipt.sha256 };
}
