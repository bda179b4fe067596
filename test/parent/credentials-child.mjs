// Runs in a child process started with LD_PRELOAD=accept-shim.so (test/native): the credentials
// server as configured for vsock, listening on an AF_UNIX stand-in whose accepted peers the shim
// reports as vsock CIDs (ACCEPT_SHIM_CIDS). Nothing here binds or connects AF_VSOCK.
// argv: <unix path> <mode: native | js-only>
import { fromParentCredentials } from '../../dist/kms/index.js';
import { serveParentCredentials } from '../../dist/parent/index.js';
import { listenSocket } from '../../dist/vsock/index.js';

const [path, mode] = process.argv.slice(2);
const logs = [];
const seen = [];
const server = await serveParentCredentials({
  address: { family: 'vsock', cid: 0xffffffff, port: 8002 },
  enclaveCid: 16,
  credentials: async () => ({ accessKeyId: 'ASIAPARENTROLE000001', secretAccessKey: 'child-secret-value', sessionToken: 'child-session-token' }),
  log: (l) => logs.push(l),
  // The stand-in for vsock: the same native listener on a unix path. `js-only` drops the
  // listener options, as a server without the native CID check would.
  listen: (_address, onConnection, options) => {
    seen.push(options?.allowedCids ?? null);
    return listenSocket({ family: 'unix', path }, onConnection, mode === 'js-only' ? {} : options);
  },
});
const outcome = (p) => p.then((c) => ({ secretAccessKey: c.secretAccessKey }), (e) => ({ code: e.code }));
const unix = { family: 'unix', path };
const first = await outcome(fromParentCredentials({ address: unix })()); // the shim reports CID 17
const second = await outcome(fromParentCredentials({ address: unix })()); // then CID 16
await new Promise((r) => setTimeout(r, 100));
server.close();
process.stdout.write(JSON.stringify({ allowedCids: seen, first, second, logs }));
process.exit(0);
