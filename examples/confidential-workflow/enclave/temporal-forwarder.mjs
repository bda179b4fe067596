// Inside the enclave there is no network: the Temporal client connects to a loopback port, and each
// connection is carried over vsock to the parent, where vsock-proxy forwards it to the Temporal
// frontend. The parent sees the gRPC bytes — which carry only sealed state.
import { createServer } from 'node:net';
import { connectSocket } from 'nitro-enclave-sdk/vsock';

/**
 * Listens on 127.0.0.1:`port` (0 = any) and relays every connection to `parent` (a vsock address in
 * the enclave; an AF_UNIX stand-in in tests). Resolves to the server and its address.
 */
export async function forwardLoopbackToParent({ port = 7233, parent }) {
  const sockets = new Set();
  const server = createServer((local) => {
    sockets.add(local);
    local.once('close', () => sockets.delete(local));
    local.pause();
    connectSocket(parent).then(
      (remote) => {
        sockets.add(remote);
        remote.once('close', () => sockets.delete(remote));
        local.pipe(remote).pipe(local);
        local.resume();
        const end = () => (local.destroy(), remote.destroy());
        local.once('error', end);
        remote.once('error', end);
      },
      () => local.destroy(),
    );
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${server.address().port}`,
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
