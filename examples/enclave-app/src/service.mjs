// The agent-message service of the example enclave app: it holds the Trusted Session Key and seals
// messages for agents. Transport-free logic, so it runs the same inside the enclave and in tests.
//
// Its port is reached only through the parent, which is the adversary: no operation may answer
// with the plaintext of a client's message or of a TSK envelope. A client's secret (sealed to the
// enclave's HPKE key) is opened only to be re-sealed under the TSK; an envelope is opened only
// inside (`verify` says whether it is authentic, never what it holds). OPERATIONS lists every
// operation with what crosses the port; the test plays the parent against each of them.
import { NitroEnclaveError } from 'nitro-enclave-sdk';

const encoder = new TextEncoder();
const fromBase64 = (text) => new Uint8Array(Buffer.from(text, 'base64'));
const toBase64 = (bytes) => Buffer.from(bytes).toString('base64');
const aadFor = (agent) => encoder.encode(`agent:${agent}`);
const str = (v) => typeof v === 'string' && v.length > 0;

/**
 * Every operation of the port: what the parent sends in and what comes back out. `plaintextOut` is
 * false for all of them: none answers with plaintext the caller did not send itself.
 */
export const OPERATIONS = {
  attest: { in: 'nonce (optional)', out: 'attestation document binding the nonce and the HPKE key', plaintextOut: false },
  seal: { in: 'agent, message (the caller\'s own plaintext)', out: 'envelope (TSK, AAD agent:<agent>)', plaintextOut: false },
  open: { in: 'agent, sealed (a client\'s HPKE message for info agent:<agent>)', out: 'envelope (TSK, AAD agent:<agent>)', plaintextOut: false },
  verify: { in: 'agent, envelope', out: 'whether it is authentic for the agent, and its plaintext length (visible in the envelope anyway)', plaintextOut: false },
  info: { in: '—', out: 'key ARN, PCR0, key id (public metadata)', plaintextOut: false },
};

/** One JSON request per line → one JSON answer per line. */
export function createAgentMessageService(tsk, { receiver } = {}) {
  const seal = (agent, message) => toBase64(tsk.encrypt(encoder.encode(message), aadFor(agent)));
  const handlers = {
    async attest(request) {
      if (!receiver || (request.nonce !== undefined && typeof request.nonce !== 'string')) throw new TypeError('bad attest');
      return { document: toBase64(await receiver.attest(request.nonce === undefined ? undefined : fromBase64(request.nonce))) };
    },
    async seal(request) {
      if (!str(request.agent) || typeof request.message !== 'string') throw new TypeError('bad seal');
      return { envelope: seal(request.agent, request.message) };
    },
    async open(request) {
      // Only a client's HPKE message: opening a TSK envelope here and answering with it would let the
      // parent turn any client's secret into plaintext in two requests (open sealed → envelope → open).
      if (!receiver || !str(request.agent) || typeof request.sealed !== 'string' || request.envelope !== undefined) throw new TypeError('bad open');
      const plaintext = await receiver.open(fromBase64(request.sealed), { info: aadFor(request.agent) });
      try {
        return { envelope: toBase64(tsk.encrypt(plaintext, aadFor(request.agent))) };
      } finally {
        plaintext.fill(0);
      }
    },
    async verify(request) {
      if (!str(request.agent) || typeof request.envelope !== 'string') throw new TypeError('bad verify');
      const plaintext = tsk.decrypt(fromBase64(request.envelope), aadFor(request.agent));
      const bytes = plaintext.length;
      plaintext.fill(0);
      return { authentic: true, bytes };
    },
    async info() {
      return { keyArn: tsk.metadata.keyArn, pcr0: tsk.metadata.pcr0, keyId: tsk.metadata.keyId };
    },
  };
  return {
    seal,
    /** Opens an envelope inside the enclave, for the app's own agents: never for an answer on the port. */
    openInside: (agent, envelope) => tsk.decrypt(fromBase64(envelope), aadFor(agent)),
    /** Handles one request line; answers never carry key material or plaintext, and errors only their code. */
    async handleLine(line) {
      let request;
      try {
        request = JSON.parse(line);
      } catch {
        return JSON.stringify({ ok: false, error: 'BAD_REQUEST' });
      }
      try {
        if (!request || typeof request !== 'object' || !Object.hasOwn(OPERATIONS, request.op)) throw new TypeError('unknown op');
        return JSON.stringify({ ok: true, ...(await handlers[request.op](request)) });
      } catch (err) {
        return JSON.stringify({ ok: false, error: err instanceof NitroEnclaveError ? err.code : 'BAD_REQUEST' });
      }
    },
  };
}

/** The longest request line: a sealed message of a few KiB, base64. */
const MAX_LINE = 1024 * 1024;

/** Serves the line protocol on any stream socket (a vsock connection in the enclave). */
export function serveConnection(service, socket) {
  let pending = []; // the current line's pieces; only new chunks are searched for '\n'
  let pendingLength = 0;
  let queue = Promise.resolve(); // answers go out in request order
  socket.setEncoding('utf8');
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk) => {
    let at;
    while ((at = chunk.indexOf('\n')) >= 0) {
      const line = pending.join('') + chunk.slice(0, at);
      pending = [];
      pendingLength = 0;
      chunk = chunk.slice(at + 1);
      if (line.trim()) queue = queue.then(async () => socket.write(`${await service.handleLine(line)}\n`));
    }
    pendingLength += chunk.length;
    if (pendingLength > MAX_LINE) return socket.destroy();
    // Joined now and then, so a peer writing one byte at a time does not make one string per byte.
    if (chunk) pending.push(chunk);
    if (pending.length >= 64) pending = [pending.join('')];
  });
}
