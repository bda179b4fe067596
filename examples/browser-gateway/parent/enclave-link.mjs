// The parent's side of the enclave's gateway port: one JSON line out, one JSON line back, per
// connection. It carries sealed bytes and documents; `onBytes` sees every byte, for a recording.
import { connectSocket } from 'nitro-enclave-sdk/vsock';

/**
 * `address` is the enclave's gateway port (vsock on the parent; AF_UNIX in tests and the demo).
 * `request(body)` resolves with the enclave's answer object, or rejects (E_ENCLAVE_UNAVAILABLE)
 * when the enclave does not answer within `timeoutMs`.
 */
export function createEnclaveLink(address, { timeoutMs = 30_000, maxAnswerBytes = 1024 * 1024, onBytes } = {}) {
  return {
    async request(body) {
      const socket = await connectSocket(address);
      return new Promise((resolve, reject) => {
        const chunks = [];
        let length = 0;
        const fail = (message) => {
          socket.destroy();
          reject(Object.assign(new Error(message), { code: 'E_ENCLAVE_UNAVAILABLE' }));
        };
        const timer = setTimeout(() => fail(`the enclave did not answer within ${timeoutMs} ms`), timeoutMs);
        socket.on('error', () => (clearTimeout(timer), fail('the connection to the enclave failed')));
        socket.on('close', () => (clearTimeout(timer), fail('the enclave closed the connection')));
        socket.on('data', (chunk) => {
          onBytes?.('from-enclave', chunk);
          chunks.push(chunk);
          length += chunk.length;
          const all = Buffer.concat(chunks);
          const end = all.indexOf(10);
          if (end >= 0) {
            clearTimeout(timer);
            socket.removeAllListeners('close');
            socket.destroy();
            try {
              resolve(JSON.parse(all.subarray(0, end).toString('utf8')));
            } catch {
              reject(Object.assign(new Error('the enclave answered with a malformed line'), { code: 'E_ENCLAVE_UNAVAILABLE' }));
            }
          } else if (length > maxAnswerBytes) fail('the enclave answer is too large');
        });
        const line = Buffer.from(`${JSON.stringify(body)}\n`);
        onBytes?.('to-enclave', line);
        socket.write(line);
      });
    },
  };
}
