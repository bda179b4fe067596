// Enclave-to-enclave over mutually attested TLS, through a parent that relays every byte.
// Each piece is what runs in one place: `startAgentServer` in the enclave of the agent that
// receives a step's result, `sendStepResult` in the enclave of the agent that produced it,
// `startRelay` on the parent (in production: a vsock forwarder on each end, src/vsock/forward.ts).
import { createServer, connect as netConnect } from 'node:net';
import { connectAttested, createAttestedTlsServer } from '../../dist/tls/index.js';

/**
 * The receiving agent (enclave B): accepts only a client enclave whose PCRs are admitted, reads
 * one JSON line (the step result) and answers with an acknowledgement naming what it received.
 */
export function startAgentServer({ identity, clients, onResult = () => {}, onRefused = () => {} }) {
  const server = createAttestedTlsServer({ identity, clients, onRefused }, (socket, client) => {
    let line = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      line += chunk;
      const end = line.indexOf('\n');
      if (end < 0) return;
      const result = JSON.parse(line.slice(0, end));
      onResult(result, client);
      socket.end(`${JSON.stringify({ ack: result.step, from: client.pcrsHex[0].slice(0, 16) })}\n`);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port })));
}

/** The sending agent (enclave A): checks the receiver's attestation, presents its own, sends the result. */
export async function sendStepResult({ identity, host = '127.0.0.1', port, expectedPcrs, trustAnchors, result }) {
  const { socket, peer } = await connectAttested({ host, port, identity, expectedPcrs, trustAnchors });
  socket.setEncoding('utf8');
  socket.write(`${JSON.stringify(result)}\n`);
  let answer = '';
  for await (const chunk of socket) answer += chunk;
  return { ack: JSON.parse(answer), peer };
}

/**
 * The parent: a byte relay that it fully controls (it could also send the connection elsewhere).
 * Records every byte it relayed in each direction, to show it saw only TLS.
 */
export function startRelay({ target }) {
  const recorded = { up: [], down: [] };
  const server = createServer((client) => {
    const upstream = netConnect(target());
    client.on('data', (d) => recorded.up.push(Buffer.from(d)));
    upstream.on('data', (d) => recorded.down.push(Buffer.from(d)));
    client.pipe(upstream).on('error', () => client.destroy());
    upstream.pipe(client).on('error', () => upstream.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port, recorded })));
}
