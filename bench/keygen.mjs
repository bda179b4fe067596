// Ephemeral RSA-2048 key generation: node:crypto (what the library uses) against node-forge.
import { generateKeyPair } from 'node:crypto';
import forge from 'node-forge';
import { fmt, line } from './lib.mjs';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const nodeGen = () => new Promise((resolve, reject) => generateKeyPair('rsa', { modulusLength: 2048 }, (e) => (e ? reject(e) : resolve())));
const forgeGen = () => new Promise((resolve, reject) => forge.pki.rsa.generateKeyPair({ bits: 2048 }, (e) => (e ? reject(e) : resolve())));

export async function benchKeygen({ rounds = 21, pureJsRounds = 3 } = {}) {
  console.log('\n## Ephemeral RSA-2048 key generation (prime search varies a lot: medians)');
  const node = [];
  const forgeDefault = [];
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    await nodeGen();
    node.push(performance.now() - t);
    // By default node-forge hands RSA key generation to node:crypto when it runs in Node.
    forge.options.usePureJavaScript = false;
    t = performance.now();
    await forgeGen();
    forgeDefault.push(performance.now() - t);
  }
  const pure = [];
  forge.options.usePureJavaScript = true;
  for (let i = 0; i < pureJsRounds; i++) {
    const t = performance.now();
    forge.pki.rsa.generateKeyPair({ bits: 2048 });
    pure.push(performance.now() - t);
  }
  forge.options.usePureJavaScript = false;
  line('node:crypto generateKeyPair (libuv pool, OpenSSL)', fmt(median(node)));
  line('node-forge, default (delegates to node:crypto in Node)', fmt(median(forgeDefault)), `${(median(forgeDefault) / median(node)).toFixed(2)} x node:crypto`);
  line('node-forge, pure JS (blocks the event loop)', fmt(median(pure)), `${(median(pure) / median(node)).toFixed(1)} x node:crypto`);
}
