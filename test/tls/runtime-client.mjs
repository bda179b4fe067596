// Run by test/tls/runtimes.test.ts in Deno, Bun and Node: the attested clients through each
// runtime's own node:https / node:tls. Input in RT_INPUT (JSON), one JSON line of outcomes out.
import { attestedGet, connectAttested, input, outcome, trustAnchors } from './client-kit.mjs';
const { port, pcr0, wrongPcr } = input;
const get = (expectedPcrs, extra = {}) => attestedGet(port, { expectedPcrs, ...extra });

const out = {
  agent: await get({ 0: pcr0 }),
  agentAlternatives: await get([{ 0: wrongPcr }, { 0: pcr0 }]),
  agentWrongImage: await get({ 0: wrongPcr }),
  agentSessionCheck: await get({ 0: pcr0 }, { sessionCheck: true }),
};
try {
  const { socket, peer } = await connectAttested({ host: '127.0.0.1', port, expectedPcrs: { 0: pcr0 }, trustAnchors });
  out.connectAttested = `ok ${peer.pcrsHex[0] === pcr0}`;
  socket.destroy();
} catch (e) {
  out.connectAttested = outcome(e);
}
console.log(JSON.stringify(out));
process.exit(0);
