// Attested TLS (issue 20 §5): a TLS 1.3 handshake to a server whose certificate carries an NSM
// document, checked by the client, against a plain TLS 1.3 handshake with the same key type
// (P-256) and the same client settings, measured interleaved in the same run. "Cached": the
// client's peer verifier has checked that certificate before; "cold": a new peer verifier and a
// new attestation verifier per connection (no certificate or chain cache), to be read against one
// cold document verification measured alongside; "first of a default client": a new client with
// default options per connection (its caches on, filled by that connection), against one
// verification by a new default verifier. Median and spread over repetitions (bench/lib.mjs), each
// ratio against the floors of its own repetition: the machine is shared, so only ratios compare.
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { connect, createServer } from 'node:tls';
import { createAttestationVerifier } from '../dist/attestation/index.node.js';
import { createNsmClient } from '../dist/nsm/index.js';
import { createSimulatedEnclave, createSimulatedNsm, issueCertificate } from '../dist/testing/index.js';
import { connectAttested, createAttestedPeerVerifier, createAttestedTlsIdentity, createAttestedTlsServer } from '../dist/tls/index.js';
import { performance } from 'node:perf_hooks';
import { row } from './lib.mjs';

/**
 * bench/lib.mjs's `repeated`, sampling CPU time (`process.cpuUsage`, user + system, every thread of
 * this process) beside wall-clock time: with 8 processes on 2 cores, wall time per sample also holds
 * the time spent waiting for a core, which moved the cold ratio by ±20 % between repetitions.
 */
async function repeatedWithCpu(cases, { reps, rounds, warmup }) {
  const names = Object.keys(cases);
  const out = { cpu: Object.fromEntries(names.map((n) => [n, []])), wall: Object.fromEntries(names.map((n) => [n, []])) };
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (let i = 0; i < warmup * 3; i++) for (const run of Object.values(cases)) await run(i);
  for (let rep = 0; rep < reps; rep++) {
    const cpu = Object.fromEntries(names.map((n) => [n, []]));
    const wall = Object.fromEntries(names.map((n) => [n, []]));
    for (let r = 0; r < warmup + rounds; r++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + r) % names.length];
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await cases[name](r);
        const t = performance.now() - t0;
        const c = process.cpuUsage(c0);
        if (r >= warmup) {
          wall[name].push(t);
          cpu[name].push((c.user + c.system) / 1000);
        }
      }
    }
    for (const n of names) {
      out.cpu[n].push(median(cpu[n]));
      out.wall[n].push(median(wall[n]));
    }
  }
  return out;
}

const listen = (server) => new Promise((r) => server.listen(0, '127.0.0.1', () => r(server.address().port)));

export async function benchTls({ reps = 5, rounds = 60, warmup = 6 } = {}) {
  console.log('\n## Attested TLS handshake (TLS 1.3, P-256, loopback, client and server in one process)');
  const enclave = createSimulatedEnclave();
  const identity = await createAttestedTlsIdentity({ nsm: createNsmClient(createSimulatedNsm(enclave)) });
  const attested = createAttestedTlsServer({ identity }, (socket) => socket.on('error', () => {}));
  const attestedPort = await listen(attested);

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = Date.now();
  const der = issueCertificate({ subject: [['CN', 'plain']], subjectPublicKey: publicKey, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) }, privateKey);
  const plain = createServer({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: new X509Certificate(der).toString(), minVersion: 'TLSv1.3' }, (socket) => socket.on('error', () => {}));
  const plainPort = await listen(plain);

  const expected = { expectedPcrs: { 0: enclave.imageSha384 }, trustAnchors: [enclave.trustAnchor] };
  const warmPeers = createAttestedPeerVerifier(expected);
  const document = identity.document;

  const handshake = (port) => () =>
    new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, () => {
        s.destroy();
        resolve();
      });
      s.on('error', reject);
    });
  const { cpu: c, wall: w } = await repeatedWithCpu(
    {
      plain: handshake(plainPort),
      cached: async () => (await connectAttested({ host: '127.0.0.1', port: attestedPort, peers: warmPeers, ...expected })).socket.destroy(),
      // Every cache off: the document's chain is parsed and verified from scratch.
      cold: async () => (await connectAttested({ host: '127.0.0.1', port: attestedPort, ...expected, verifier: createAttestationVerifier({ cacheSize: 0 }), cacheSize: 0 })).socket.destroy(),
      verifyOnly: () => createAttestationVerifier({ cacheSize: 0 }).verify(document, { ...expected }),
      // A client's first connection with default options: caches on, filled by this connection.
      coldDefault: async () => (await connectAttested({ host: '127.0.0.1', port: attestedPort, ...expected })).socket.destroy(),
      verifyDefault: () => createAttestationVerifier().verify(document, { ...expected }),
    },
    { reps, rounds, warmup },
  );
  console.log(`medians over ${reps} interleaved repetitions of ${rounds} rounds, [min–max]; each ratio against the floor of the same repetition`);
  console.log('CPU time of this process per handshake (client and server both run here; judged: waiting for a core is not cost)');
  const rows = (t, judged) => {
    const tag = judged ? '' : ' (wall)';
    const g = (goal, name) => (judged ? { goal, name } : {});
    row(`floor: plain TLS 1.3 handshake${tag}`, t.plain);
    row(`attested, certificate checked before (cached)${tag}`, t.cached, { vs: t.plain, vsName: 'plain', ...g({ max: 1.2 }, 'tls: cached attested handshake / plain') });
    row(`one cold document verification (no caches)${tag}`, t.verifyOnly);
    row(`attested, cold (new verifier, no caches)${tag}`, t.cold, { vs: t.plain.map((p, i) => p + t.verifyOnly[i]), vsName: '(plain + one cold verification)', ...g({ max: 1.0 }, 'tls: cold attested handshake / (plain + verify)') });
    row(`one cold verification (new default verifier)${tag}`, t.verifyDefault);
    row(`attested, first of a new default client${tag}`, t.coldDefault, { vs: t.plain.map((p, i) => p + t.verifyDefault[i]), vsName: '(plain + one cold verification)', ...g({ max: 1.0 }, 'tls: first handshake of a default client / (plain + verify)') });
  };
  rows(c, true);
  console.log('wall-clock time (the same samples; on a loaded machine it also measures waiting for a core)');
  rows(w, false);
  identity.close();
  attested.close();
  plain.close();
  return { cpu: c, wall: w };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchTls({ reps: Number(process.argv[2] ?? 5) });
  (await import('./lib.mjs')).reportGoals();
}
