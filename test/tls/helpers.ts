import type { AddressInfo } from 'node:net';
import type { Server, Socket } from 'node:net';
import { createNsmClient } from '../../src/nsm/client.js';
import { createSimulatedEnclave, createSimulatedNsm, createTestPki, testImagePcr, type TestPki } from '../../src/testing/index.js';
import { createAttestedTlsIdentity, type AttestedTlsIdentityOptions, type IdentityTimers } from '../../src/tls/index.js';

export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Timers a test fires by hand. */
export function manualTimers() {
  const pending = new Map<number, () => void>();
  let next = 1;
  const timers: IdentityTimers = {
    setTimeout: (fn) => {
      pending.set(next, fn);
      return next++;
    },
    clearTimeout: (h) => void pending.delete(h as number),
  };
  return {
    timers,
    pending,
    fire() {
      const [id, fn] = [...pending][0]!;
      pending.delete(id);
      fn();
    },
  };
}

/** A simulated enclave of image `label` with its attested TLS identity. */
export async function attestedEnclave(label: string, options: { pki?: TestPki; clock?: () => Date } & Partial<AttestedTlsIdentityOptions> = {}) {
  const pki = options.pki ?? createTestPki();
  const enclave = createSimulatedEnclave({ pki, pcrs: { 0: testImagePcr(label) }, ...(options.clock && { clock: options.clock }) });
  const nsm = createNsmClient(createSimulatedNsm(enclave));
  const { pki: _p, ...rest } = options;
  const identity = await createAttestedTlsIdentity({ nsm, timers: manualTimers().timers, ...rest });
  return { enclave, nsm, identity, pcr0: enclave.imageSha384, trustAnchors: [enclave.trustAnchor] };
}

const tracked = new WeakMap<Server, Set<Socket>>();

/** Remembers the server's connections, so that {@link close} can end them. Call before any connection arrives. */
export function track<S extends Server>(server: S): S {
  const sockets = new Set<Socket>();
  tracked.set(server, sockets);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return server;
}

export function listen<S extends Server>(server: S): Promise<{ server: S; port: number }> {
  if (!tracked.has(server)) track(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}

export function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const socket of tracked.get(server) ?? []) socket.destroy();
  });
}
