// What runtime-client.mjs and handshake-client.mjs share, in whichever runtime runs them (Node,
// Deno, Bun): their input (RT_INPUT, JSON), the package's tls module, the trust anchor, how an
// outcome is written, and one GET through the attested https agent.
import https from 'node:https';

export const input = JSON.parse(process.env.RT_INPUT);
export const { createAttestedHttpsAgent, connectAttested } = await import(`${input.dist}/tls/index.js`);
export const trustAnchors = [Uint8Array.from(atob(input.anchor), (c) => c.charCodeAt(0))];
export const outcome = (e) => `${e.code ?? 'uncoded'} ${e.message}`;

/** `ok <body>` from GET / on 127.0.0.1:`port` through a new attested agent, or the error's outcome. */
export async function attestedGet(port, options) {
  const agent = createAttestedHttpsAgent({ trustAnchors, ...options });
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
