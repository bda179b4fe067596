// Run by test/tls/runtimes.test.ts in Deno, Bun and Node: the attested clients through each
// runtime's own node:https / node:tls. Input in RT_INPUT (JSON), one JSON line of outcomes out.
import https from 'node:https';
const { port, pcr0, anchor, wrongPcr, dist } = JSON.parse(process.env.RT_INPUT);
const { createAttestedHttpsAgent, connectAttested } = await import(`${dist}/tls/index.js`);
const trustAnchors = [Uint8Array.from(atob(anchor), (c) => c.charCodeAt(0))];
const outcome = (e) => `${e.code ?? 'uncoded'} ${e.message}`;

async function get(expectedPcrs, extra = {}) {
  const agent = createAttestedHttpsAgent({ expectedPcrs, trustAnchors, ...extra });
  try {
    return await new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve(`ok ${body}`));
        })
        .on('error', reject);
    });
  } catch (e) {
    return outcome(e);
  } finally {
    agent.destroy();
  }
}

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
