// The parent's link between the two agent enclaves: it accepts image A's vsock connections on the
// handoff port and relays each one, byte for byte, to image B's handoff port. It holds no key and
// sees only TLS records; it could send them anywhere (route), and the enclaves' checks are what
// make that useless.
import { connectSocket, listenSocket } from 'nitro-enclave-sdk/vsock';

/**
 * Listens on `listen` (vsock in production: `{ family: 'vsock', cid: VMADDR_CID_ANY, port: 6000 }`
 * with `allowedCids: [A's CID]`; an AF_UNIX stand-in in tests) and relays each connection to
 * `route()` (default: `target`, B's handoff port). `tap(direction, chunk)` sees each chunk as it
 * passes ('up' = A to B), for the demo's "what the parent saw".
 */
export function startEnclaveLink({ listen, target, route = () => target, tap = () => {}, allowedCids, onError = () => {} }) {
  const open = new Set();
  const listener = listenSocket(
    listen,
    (from) => {
      open.add(from);
      from.once('close', () => open.delete(from));
      from.on('error', () => {});
      from.pause();
      Promise.resolve()
        .then(() => route())
        .then((address) => (address ? connectSocket(address, { allowHalfOpen: true }) : null))
        .then(
          (to) => {
            if (!to) return void from.destroy();
            open.add(to);
            to.once('close', () => (open.delete(to), from.destroy()));
            from.once('close', () => to.destroy());
            to.on('error', () => {});
            from.on('data', (chunk) => tap('up', chunk));
            to.on('data', (chunk) => tap('down', chunk));
            from.pipe(to);
            to.pipe(from);
            from.resume();
          },
          (err) => {
            onError(err);
            from.destroy();
          },
        );
    },
    { ...(allowedCids ? { allowedCids } : {}), onError },
  );
  return {
    close() {
      listener.close();
      for (const s of open) s.destroy();
    },
  };
}
