// Run by test/tls/runtimes.test.ts in Node, Deno and Bun against test/tls/wrong-key-server.ts: the
// attested clients (connectAttested, then the https agent) on a server that presents the genuine
// enclave certificate, once with a CertificateVerify signed by another key (`wrongPort`) and once
// with the certificate's own key (`rightPort`). Each client writes a request as soon as it accepts;
// the server records whether any of it arrived. Input in RT_INPUT (JSON), one JSON line of outcomes out.
import { attestedGet, connectAttested, input, outcome, trustAnchors } from './client-kit.mjs';
const { wrongPort, rightPort, pcr0 } = input;
const expectedPcrs = { 0: pcr0 };
const REQUEST = 'GET / HTTP/1.1\r\nhost: enclave\r\nconnection: close\r\n\r\n';

async function viaConnectAttested(port) {
  try {
    const { socket } = await connectAttested({ host: '127.0.0.1', port, expectedPcrs, trustAnchors });
    return await new Promise((resolve, reject) => {
      let answer = '';
      socket.on('data', (d) => (answer += d));
      socket.on('end', () => resolve(`ok ${answer.split('\r\n\r\n')[1]}`));
      socket.on('error', reject);
      socket.write(REQUEST);
    });
  } catch (e) {
    return outcome(e);
  }
}

const viaAgent = (port) => attestedGet(port, { expectedPcrs });

// One after the other, so that the server's connection records come in this order.
const out = {
  wrongConnectAttested: await viaConnectAttested(wrongPort),
  wrongAgent: await viaAgent(wrongPort),
  rightConnectAttested: await viaConnectAttested(rightPort),
  rightAgent: await viaAgent(rightPort),
};
console.log(JSON.stringify(out));
process.exit(0);
