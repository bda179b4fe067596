// Attested TLS (issue 20 §5): a TLS 1.3 handshake to a server whose certificate carries an NSM
// document, checked by the client, against a plain TLS 1.3 handshake with the same key type
// (P-256) and the same client settings, measured interleaved in the same run. "Cached": the
// client's peer verifier has checked that certificate before; "cold": a new peer verifier and a
// new attestation verifier per connection (no certificate or chain cache), to be read against one
// cold document verification measured alongside.
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { connect, createServer } from 'node:tls';
import { createAttestationVerifier } from '../dist/attestation/index.node.js';
import { createNsmClient } from '../dist/nsm/index.js';
import { createSimulatedEnclave, createSimulatedNsm, issueCertificate } from '../dist/testing/index.js';
import { connectAttested, createAttestedPeerVerifier, createAttestedTlsIdentity, createAttestedTlsServer } from '../dist/tls/index.js';
import { fmt, interleaved, line } from './lib.mjs';

const listen = (server) => new Promise((r) => server.listen(0, '127.0.0.1', () => r(server.address().port)));

export async function benchTls({ rounds = 200, warmup = 20 } = {}) {
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

  const r = await interleaved(
    {
      plain: () =>
        new Promise((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port: plainPort, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, () => {
            s.destroy();
            resolve();
          });
          s.on('error', reject);
        }),
      cached: async () => (await connectAttested({ host: '127.0.0.1', port: attestedPort, peers: warmPeers, ...expected })).socket.destroy(),
      cold: async () => (await connectAttested({ host: '127.0.0.1', port: attestedPort, ...expected, verifier: createAttestationVerifier({ cacheSize: 0 }), cacheSize: 0 })).socket.destroy(),
      verifyOnly: () => createAttestationVerifier({ cacheSize: 0 }).verify(document, { ...expected }),
    },
    { rounds, warmup },
  );
  line('floor: plain TLS 1.3 handshake', fmt(r.plain.median), `p90 ${fmt(r.plain.p90)}`);
  line('attested handshake, certificate checked before (cached)', fmt(r.cached.median), `${(r.cached.median / r.plain.median).toFixed(2)} x plain (goal <= 1.2)`);
  line('one cold document verification (no caches)', fmt(r.verifyOnly.median));
  const budget = r.plain.median + r.verifyOnly.median;
  line('attested handshake, cold (new verifier, no caches)', fmt(r.cold.median), `${(r.cold.median / budget).toFixed(2)} x (plain + one cold verification) (goal <= 1.0)`);
  identity.close();
  attested.close();
  plain.close();
  return { cachedRatio: r.cached.median / r.plain.median, coldRatio: r.cold.median / budget };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const reps = Number(process.argv[2] ?? 1);
  for (let i = 0; i < reps; i++) await benchTls();
}
