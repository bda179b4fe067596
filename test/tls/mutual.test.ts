// issue 20 §3: two enclaves of different images exchange a step's result over mutually attested
// TLS through a parent that relays (and records) every byte: the recording holds no plaintext, and
// a parent that routes to an enclave of another image is refused on both sides. The example runs
// the built package: `npm run build` first.
import { afterEach, describe, expect, it } from 'vitest';
import type { VerifiedAttestation } from '../../src/attestation/index.node.js';
import { createTestPki } from '../../src/testing/index.js';
import { connectAttested } from '../../src/tls/index.js';
// @ts-expect-error: plain ESM example without type declarations
import { sendStepResult, startAgentServer, startRelay } from '../../examples/attested-tls/exchange.mjs';
import { attestedEnclave, close, track } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function scene() {
  const pki = createTestPki();
  const planner = await attestedEnclave('planner agent', { pki });
  const writer = await attestedEnclave('writer agent', { pki });
  const impostor = await attestedEnclave('some other image', { pki });
  return { planner, writer, impostor, trustAnchors: planner.trustAnchors };
}

async function agentServer(identity: unknown, clients: unknown) {
  const results: unknown[] = [];
  const refused: Array<{ code?: string; message: string }> = [];
  const { server, port } = await startAgentServer({ identity, clients, onResult: (r: unknown) => results.push(r), onRefused: (e: { code?: string; message: string }) => refused.push(e) });
  track(server);
  cleanups.push(() => close(server));
  return { port: port as number, results, refused };
}

async function relayTo(port: number) {
  const relay = await startRelay({ target: () => ({ host: '127.0.0.1', port }) });
  track(relay.server);
  cleanups.push(() => close(relay.server));
  return relay as { port: number; recorded: { up: Buffer[]; down: Buffer[] } };
}

const secret = 'the-planner-outline-7f3a9c';

describe('enclave to enclave through a relaying parent (mutual attested TLS)', () => {
  it('completes the exchange; each side saw the other\'s image; the parent relayed only TLS records', async () => {
    const { planner, writer, trustAnchors } = await scene();
    const b = await agentServer(writer.identity, { expectedPcrs: { 0: planner.pcr0 }, trustAnchors });
    const relay = await relayTo(b.port);
    const { ack, peer } = await sendStepResult({ identity: planner.identity, port: relay.port, expectedPcrs: { 0: writer.pcr0 }, trustAnchors, result: { step: 'plan', outline: secret } });
    expect(ack).toEqual({ ack: 'plan', from: planner.pcr0.slice(0, 16) });
    expect((peer as VerifiedAttestation).pcrsHex[0]).toBe(writer.pcr0);
    expect(b.results).toEqual([{ step: 'plan', outline: secret }]);

    const up = Buffer.concat(relay.recorded.up);
    const down = Buffer.concat(relay.recorded.down);
    expect(up.length).toBeGreaterThan(0);
    expect(down.length).toBeGreaterThan(0);
    for (const bytes of [up, down]) {
      expect(bytes.includes(secret)).toBe(false);
      expect(bytes.includes('"ack"')).toBe(false);
      expect(bytes.includes('plan')).toBe(false);
    }
    // Every relayed byte is a TLS record (content types 20..23, version 0x0303): walk them all.
    for (const bytes of [up, down]) {
      let at = 0;
      while (at < bytes.length) {
        expect([20, 21, 22, 23]).toContain(bytes[at]);
        expect(bytes.readUInt16BE(at + 1) & 0xff00).toBe(0x0300);
        at += 5 + bytes.readUInt16BE(at + 3);
      }
      expect(at).toBe(bytes.length);
    }
  });

  it('the parent routes the planner to an enclave of another image: the planner refuses it before sending', async () => {
    const { planner, writer, impostor, trustAnchors } = await scene();
    // The impostor would accept the planner (it admits the planner's image): only the planner's check stops it.
    const c = await agentServer(impostor.identity, { expectedPcrs: { 0: planner.pcr0 }, trustAnchors });
    const relay = await relayTo(c.port);
    await expect(sendStepResult({ identity: planner.identity, port: relay.port, expectedPcrs: { 0: writer.pcr0 }, trustAnchors, result: { step: 'plan', outline: secret } })).rejects.toMatchObject({
      code: 'ERR_TLS_ATTESTATION_PCR_MISMATCH',
      message: `the peer's attestation refused: ERR_ATTESTATION_PCR_MISMATCH: PCR0 mismatch: expected ${writer.pcr0}, document has ${impostor.pcr0}`,
    });
    expect(c.results).toEqual([]);
    expect(Buffer.concat(relay.recorded.up).includes(secret)).toBe(false);
  });

  it('the parent connects an enclave of another image to the writer: the writer refuses it and reads nothing', async () => {
    const { planner, writer, impostor, trustAnchors } = await scene();
    const b = await agentServer(writer.identity, { expectedPcrs: { 0: planner.pcr0 }, trustAnchors });
    const relay = await relayTo(b.port);
    // The impostor checks the writer as a real client would, and passes; the writer then refuses it.
    const { socket } = await connectAttested({ identity: impostor.identity, port: relay.port, host: '127.0.0.1', expectedPcrs: { 0: writer.pcr0 }, trustAnchors });
    socket.on('error', () => {});
    socket.write(`${JSON.stringify({ step: 'plan', outline: 'forged' })}\n`);
    await closed(socket);
    expect(b.results).toEqual([]);
    expect(b.refused).toHaveLength(1);
    expect(b.refused[0]).toMatchObject({
      code: 'ERR_TLS_ATTESTATION_PCR_MISMATCH',
      message: `the peer's attestation refused: ERR_ATTESTATION_PCR_MISMATCH: PCR0 mismatch: expected ${planner.pcr0}, document has ${impostor.pcr0}`,
    });
  });

  it('a client that presents no certificate (the parent itself) is refused by the writer', async () => {
    const { planner, writer, trustAnchors } = await scene();
    const b = await agentServer(writer.identity, { expectedPcrs: { 0: planner.pcr0 }, trustAnchors });
    const { socket } = await connectAttested({ port: b.port, host: '127.0.0.1', expectedPcrs: { 0: writer.pcr0 }, trustAnchors });
    socket.on('error', () => {});
    socket.write('{"step":"plan"}\n');
    await closed(socket);
    expect(b.results).toEqual([]);
    expect(b.refused[0]).toMatchObject({ code: 'ERR_TLS_ATTESTATION_MISSING', message: 'the peer presented no certificate' });
  });
});

/** Resolves once `socket` has closed: at once if the peer's refusal closed it before we looked (the client's handshake ends before the server judges the client's certificate). */
function closed(socket: import('node:net').Socket): Promise<void> {
  return socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()));
}
