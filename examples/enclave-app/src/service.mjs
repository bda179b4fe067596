// The agent-message service of the example enclave app: it holds the Trusted
// Session Key and seals/opens messages exchanged between agents. Transport-free
// logic, so it runs the same inside the enclave and in tests.
// With an attested receiver (nitro-enclave-sdk/seal) it is also the gateway for clients:
// `attest` hands out a document binding the client's nonce and the receiver's HPKE key, and
// `open` takes a message the client sealed to that key and re-seals it under the TSK for the
// agent named in the HPKE info, so the client's plaintext never leaves the enclave.
import { NitroEnclaveError } from 'nitro-enclave-sdk';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const fromBase64 = (text) => new Uint8Array(Buffer.from(text, 'base64'));

/** One JSON request per line → one JSON answer per line. */
export function createAgentMessageService(tsk, { receiver } = {}) {
  const seal = (agent, message) => Buffer.from(tsk.encrypt(encoder.encode(message), encoder.encode(`agent:${agent}`))).toString('base64');
  const open = (agent, envelope) => decoder.decode(tsk.decrypt(new Uint8Array(Buffer.from(envelope, 'base64')), encoder.encode(`agent:${agent}`)));
  return {
    seal,
    open,
    /** Handles one request line; never echoes key material, and errors carry only their code. */
    async handleLine(line) {
      let request;
      try {
        request = JSON.parse(line);
      } catch {
        return JSON.stringify({ ok: false, error: 'BAD_REQUEST' });
      }
      try {
        if (request.op === 'attest' && receiver && (request.nonce === undefined || typeof request.nonce === 'string')) {
          const document = await receiver.attest(request.nonce === undefined ? undefined : fromBase64(request.nonce));
          return JSON.stringify({ ok: true, document: Buffer.from(document).toString('base64') });
        }
        if (typeof request.agent !== 'string' || !request.agent) throw new TypeError('agent is required');
        if (request.op === 'seal' && typeof request.message === 'string') return JSON.stringify({ ok: true, envelope: seal(request.agent, request.message) });
        if (request.op === 'open' && typeof request.envelope === 'string') return JSON.stringify({ ok: true, message: open(request.agent, request.envelope) });
        if (request.op === 'open' && receiver && typeof request.sealed === 'string') {
          const plaintext = await receiver.open(fromBase64(request.sealed), { info: encoder.encode(`agent:${request.agent}`) });
          try {
            const envelope = Buffer.from(tsk.encrypt(plaintext, encoder.encode(`agent:${request.agent}`))).toString('base64');
            return JSON.stringify({ ok: true, envelope });
          } finally {
            plaintext.fill(0);
          }
        }
        if (request.op === 'info') return JSON.stringify({ ok: true, keyArn: tsk.metadata.keyArn, pcr0: tsk.metadata.pcr0, keyId: tsk.metadata.keyId });
        throw new TypeError('unknown op');
      } catch (err) {
        return JSON.stringify({ ok: false, error: err instanceof NitroEnclaveError ? err.code : 'BAD_REQUEST' });
      }
    },
  };
}

/** Serves the line protocol on any stream socket (a vsock connection in the enclave). */
export function serveConnection(service, socket) {
  let buffer = '';
  let queue = Promise.resolve(); // answers go out in request order
  socket.setEncoding('utf8');
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk) => {
    buffer += chunk;
    if (buffer.length > 1024 * 1024) return socket.destroy();
    let at;
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      if (line.trim()) queue = queue.then(async () => socket.write(`${await service.handleLine(line)}\n`));
    }
  });
}
