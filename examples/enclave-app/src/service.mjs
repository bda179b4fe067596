// The agent-message service of the example enclave app: it holds the Trusted
// Session Key and seals/opens messages exchanged between agents. Transport-free
// logic, so it runs the same inside the enclave and in tests.
import { NitroEnclaveError } from 'nitro-enclave-sdk';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One JSON request per line → one JSON answer per line. */
export function createAgentMessageService(tsk) {
  const seal = (agent, message) => Buffer.from(tsk.encrypt(encoder.encode(message), encoder.encode(`agent:${agent}`))).toString('base64');
  const open = (agent, envelope) => decoder.decode(tsk.decrypt(new Uint8Array(Buffer.from(envelope, 'base64')), encoder.encode(`agent:${agent}`)));
  return {
    seal,
    open,
    /** Handles one request line; never echoes key material, and errors carry only their code. */
    handleLine(line) {
      let request;
      try {
        request = JSON.parse(line);
      } catch {
        return JSON.stringify({ ok: false, error: 'BAD_REQUEST' });
      }
      try {
        if (typeof request.agent !== 'string' || !request.agent) throw new TypeError('agent is required');
        if (request.op === 'seal' && typeof request.message === 'string') return JSON.stringify({ ok: true, envelope: seal(request.agent, request.message) });
        if (request.op === 'open' && typeof request.envelope === 'string') return JSON.stringify({ ok: true, message: open(request.agent, request.envelope) });
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
  socket.setEncoding('utf8');
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk) => {
    buffer += chunk;
    if (buffer.length > 1024 * 1024) return socket.destroy();
    let at;
    while ((at = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      if (line.trim()) socket.write(`${service.handleLine(line)}\n`);
    }
  });
}
