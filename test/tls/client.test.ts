// issue 20 §2: clients that check before sending a byte. The https agent and the fetch dispatcher
// refuse a server of another image, an expired document, a document lifted onto another key and a
// plain TLS server, each before a request byte reaches the server; keep-alive and TLS session
// resumption never skip the check for a new connection; the per-session check catches a server
// that holds the enclave's key but is not the enclave.
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { request as httpsRequest, createServer as createHttpsServer, type Agent } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestPki, issueCertificate, testImagePcr } from '../../src/testing/index.js';
import { issueAttestedCertificate } from '../../src/tls/certificate.js';
import { createAttestedDispatcher, createAttestedHttpsAgent, createAttestedHttpsServer, createAttestedPeerVerifier, type AttestedClientOptions, type AttestedPeerVerifier } from '../../src/tls/index.js';
import { attestedEnclave, close, hex, listen } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** An attested https server that records, per connection, every plaintext byte it received. */
async function service(label = 'service', pki = createTestPki()) {
  const enclave = await attestedEnclave(label, { pki });
  const received: Buffer[] = [];
  const reused: boolean[] = [];
  let requests = 0;
  const server = createAttestedHttpsServer(enclave.identity, (req, res) => {
    requests++;
    res.setHeader('connection', req.headers['x-close'] ? 'close' : 'keep-alive');
    res.end(`hello from ${label}`);
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    reused.push(socket.isSessionReused());
    socket.on('data', (d: Buffer) => received.push(d));
  });
  const { port } = await listen(server);
  cleanups.push(() => close(server));
  return { ...enclave, server, port, received, reused, requests: () => requests };
}

/** Counts the checks a client runs. */
function counting(peers: AttestedPeerVerifier) {
  const counter = { certificates: 0 };
  const wrapped: AttestedPeerVerifier = {
    ...peers,
    verifyCertificate: (der) => {
      counter.certificates++;
      return peers.verifyCertificate(der);
    },
  };
  return { counter, peers: wrapped };
}

type Get = (port: number, path?: string, headers?: Record<string, string>) => Promise<string>;
interface Client {
  get: Get;
  close(): Promise<void>;
}

const clients: Record<string, (options: AttestedClientOptions & { keepAlive?: boolean }) => Promise<Client>> = {
  'node:https agent': async (options) => {
    const agent: Agent = createAttestedHttpsAgent({ ...options, agentOptions: { keepAlive: options.keepAlive ?? false } });
    return {
      get: (port, path = '/', headers = {}) =>
        new Promise((resolve, reject) => {
          const req = httpsRequest({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve(body));
          });
          req.on('error', reject);
          req.end();
        }),
      close: async () => agent.destroy(),
    };
  },
  'fetch with the undici dispatcher': async (options) => {
    // One connection per origin, so that keep-alive reuse is what happens (undici may open more).
    const dispatcher = await createAttestedDispatcher({ ...options, agentOptions: { connections: 1 } });
    return {
      get: async (port, path = '/', headers = {}) => {
        try {
          return await (await fetch(`https://127.0.0.1:${port}${path}`, { dispatcher, headers } as RequestInit)).text();
        } catch (err) {
          // fetch wraps connection errors as TypeError('fetch failed', { cause })
          throw (err as Error).cause ?? err;
        }
      },
      close: () => dispatcher.close(),
    };
  },
};

for (const [name, make] of Object.entries(clients)) {
  describe(`${name}`, () => {
    it('succeeds when the PCRs match (one of several admitted images)', async () => {
      const s = await service();
      const client = await make({ expectedPcrs: [{ 0: hex(testImagePcr('old')) }, { 0: s.pcr0 }], trustAnchors: s.trustAnchors });
      cleanups.push(() => client.close());
      expect(await client.get(s.port)).toBe('hello from service');
    });

    it('refuses a server of another image before a request byte leaves', async () => {
      const s = await service();
      const other = hex(testImagePcr('other'));
      const client = await make({ expectedPcrs: { 0: other }, trustAnchors: s.trustAnchors });
      cleanups.push(() => client.close());
      await expect(client.get(s.port)).rejects.toMatchObject({
        code: 'ERR_TLS_ATTESTATION_PCR_MISMATCH',
        message: `the peer's attestation refused: ERR_ATTESTATION_PCR_MISMATCH: PCR0 mismatch: expected ${other}, document has ${s.pcr0}`,
      });
      expect(s.requests()).toBe(0);
      expect(Buffer.concat(s.received).length).toBe(0);
    });

    it('refuses an expired document (the server stopped re-attesting) before a request byte leaves', async () => {
      const s = await service();
      const later = new Date(Date.now() + 11 * 60_000);
      const client = await make({ expectedPcrs: { 0: s.pcr0 }, trustAnchors: s.trustAnchors, clock: () => later });
      cleanups.push(() => client.close());
      await expect(client.get(s.port)).rejects.toMatchObject({ code: 'ERR_TLS_ATTESTATION_STALE', message: expect.stringMatching(/older than maxAgeMs 600000 ms/) });
      expect(Buffer.concat(s.received).length).toBe(0);
    });

    it('refuses a genuine document lifted onto a certificate of another key', async () => {
      const genuine = await attestedEnclave('service');
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
      const now = new Date();
      const der = issueAttestedCertificate({ privateKey, spki, document: genuine.identity.document, notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + 3600_000), commonName: 'parent', dnsNames: [] });
      const received: Buffer[] = [];
      const server = createHttpsServer({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64')}\n-----END CERTIFICATE-----\n` }, (_q, r) => r.end('parent'));
      server.on('secureConnection', (s: TLSSocket) => s.on('data', (d: Buffer) => received.push(d)));
      const { port } = await listen(server);
      cleanups.push(() => close(server));
      const client = await make({ expectedPcrs: { 0: genuine.pcr0 }, trustAnchors: genuine.trustAnchors });
      cleanups.push(() => client.close());
      await expect(client.get(port)).rejects.toMatchObject({ code: 'ERR_TLS_ATTESTATION_KEY_MISMATCH', message: "the peer's attestation refused: it does not commit to the peer's TLS key" });
      expect(Buffer.concat(received).length).toBe(0);
    });

    it('refuses a plain TLS server (no attestation extension)', async () => {
      const pki = createTestPki();
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
      const now = Date.now();
      const der = issueCertificate({ subject: [['CN', 'plain']], subjectPublicKey: publicKey, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) }, privateKey);
      const received: Buffer[] = [];
      const server = createHttpsServer({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: new X509Certificate(der).toString() }, (_q, r) => r.end('plain'));
      server.on('secureConnection', (s: TLSSocket) => s.on('data', (d: Buffer) => received.push(d)));
      const { port } = await listen(server);
      cleanups.push(() => close(server));
      const client = await make({ expectedPcrs: { 0: hex(testImagePcr('service')) }, trustAnchors: [pki.root.der] });
      cleanups.push(() => client.close());
      await expect(client.get(port)).rejects.toMatchObject({ code: 'ERR_TLS_ATTESTATION_MISSING' });
      expect(Buffer.concat(received).length).toBe(0);
    });

    it('keep-alive reuses a checked socket; a new connection is checked again even when its TLS session is resumed', async () => {
      const s = await service();
      let now = new Date();
      const { counter, peers } = counting(createAttestedPeerVerifier({ expectedPcrs: { 0: s.pcr0 }, trustAnchors: s.trustAnchors, clock: () => now }));
      const client = await make({ expectedPcrs: { 0: s.pcr0 }, peers, keepAlive: true });
      cleanups.push(() => client.close());
      expect(await client.get(s.port)).toBe('hello from service');
      expect(await client.get(s.port, '/', { 'x-close': '1' })).toBe('hello from service'); // same socket; the server closes it after
      expect(counter.certificates).toBe(1);
      expect(s.reused).toEqual([false]);
      await new Promise((r) => setTimeout(r, 50)); // let the close arrive
      expect(await client.get(s.port, '/', { 'x-close': '1' })).toBe('hello from service');
      expect(s.reused).toEqual([false, true]); // resumed…
      expect(counter.certificates).toBe(2); // …and checked
      // The cached verdict is re-judged on the resumed connection: past maxAgeMs it is refused.
      now = new Date(Date.now() + 11 * 60_000);
      await new Promise((r) => setTimeout(r, 50));
      await expect(client.get(s.port)).rejects.toMatchObject({ code: 'ERR_TLS_ATTESTATION_STALE' });
      expect(counter.certificates).toBe(3);
      expect(s.requests()).toBe(3);
    });

    it('per-session check: a fresh document binds the nonce and this session; a holder of the key that is not the enclave is refused', async () => {
      const s = await service();
      const client = await make({ expectedPcrs: { 0: s.pcr0 }, trustAnchors: s.trustAnchors, sessionCheck: true });
      cleanups.push(() => client.close());
      expect(await client.get(s.port)).toBe('hello from service');
      expect(s.requests()).toBe(1); // the well-known request is answered by the identity, not the app

      // A server that holds the enclave's key (say it leaked) and relays the session question to
      // the real enclave over its own TLS session: the answer binds that other session.
      const tlsOptions = s.identity.tlsOptions();
      const relay = createHttpsServer(tlsOptions, (req, res) => {
        const upstream = httpsRequest({ host: '127.0.0.1', port: s.port, path: req.url, rejectUnauthorized: false }, (up) => {
          res.writeHead(up.statusCode!, up.headers);
          up.pipe(res);
        });
        upstream.end();
      });
      const { port } = await listen(relay);
      cleanups.push(() => close(relay));
      await expect(client.get(port)).rejects.toMatchObject({ code: 'ERR_TLS_ATTESTATION_SESSION', message: 'the session attestation refused: it does not bind this TLS session and nonce' });
      expect(s.requests()).toBe(1);
    });
  });
}

describe('client options', () => {
  it('expectedPcrs is required and names at least one PCR; a bad option is a TypeError', async () => {
    const msg = 'expectedPcrs must name at least one PCR (in every set of a list): trusting any enclave is never meant';
    expect(() => createAttestedHttpsAgent({} as never)).toThrow(new TypeError(msg));
    expect(() => createAttestedHttpsAgent({ expectedPcrs: [] })).toThrow(new TypeError(msg));
    expect(() => createAttestedHttpsAgent({ expectedPcrs: {} })).toThrow(new TypeError(msg));
    await expect(createAttestedDispatcher({ expectedPcrs: { 0: 'aa'.repeat(48) }, maxAgeMs: -1 })).rejects.toThrow(new TypeError('maxAgeMs must be a non-negative finite number'));
  });

  it('a shared `peers` verifier decides what is admitted; expectedPcrs beside it must name the same sets, never be silently ignored', () => {
    const peers = createAttestedPeerVerifier({ expectedPcrs: [{ 0: 'AA'.repeat(48) }, { 0: 'bb'.repeat(48), 1: 'cc'.repeat(48) }] });
    const differs = new TypeError('expectedPcrs differs from the expectedPcrs of `peers`, which is what the client checks: give one of them, or the same sets');
    expect(() => createAttestedHttpsAgent({ peers, expectedPcrs: { 0: 'dd'.repeat(48) } })).toThrow(differs);
    expect(() => createAttestedHttpsAgent({ peers, expectedPcrs: [{ 0: 'aa'.repeat(48) }] })).toThrow(differs);
    // the same sets, written in another case and key order
    expect(() => createAttestedHttpsAgent({ peers, expectedPcrs: [{ 0: 'aa'.repeat(48) }, { 1: 'CC'.repeat(48), 0: 'bb'.repeat(48) }] }).destroy()).not.toThrow();
    expect(() => createAttestedHttpsAgent({ peers } as never).destroy()).not.toThrow();
  });
});
