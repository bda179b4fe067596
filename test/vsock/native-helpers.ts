import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';

/**
 * Long enough for a python3 child to start on a loaded 2-core CI machine; a bound, so a child that
 * never gets ready fails the test with a message instead of hanging it.
 */
const READY_TIMEOUT_MS = 20_000;

type PythonChild = ChildProcessByStdio<null, Readable, Readable>;

/**
 * Runs `python3 -c script` and resolves with the first line it prints on stdout, which the script
 * prints once its socket is ready. Rejects (and kills the child) if it exits, fails to start, or
 * prints nothing within READY_TIMEOUT_MS: a fixed sleep would race the child on a loaded machine.
 */
function spawnReady(script: string, what: string, args: string[] = []): Promise<{ child: PythonChild; line: string }> {
  const child = spawn('python3', ['-c', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const fail = (why: string) => {
      cleanup();
      child.kill('SIGKILL');
      reject(new Error(`${what}: ${why}${stderr ? `; stderr: ${stderr.trim()}` : ''}`));
    };
    const onData = (d: Buffer) => {
      stdout += d;
      const newline = stdout.indexOf('\n');
      if (newline < 0) return;
      cleanup();
      resolve({ child, line: stdout.slice(0, newline).trim() });
    };
    const onStderr = (d: Buffer) => (stderr += d);
    const onExit = (code: number | null, signal: string | null) => fail(`python3 exited (${code ?? signal}) before it was listening`);
    const onError = (err: Error) => fail(`cannot start python3 (${err.message})`);
    const timer = setTimeout(() => fail(`python3 was not listening after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    function cleanup() {
      clearTimeout(timer);
      child.stdout.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    }
    child.stdout.on('data', onData);
    child.stderr.on('data', onStderr);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/**
 * An AF_UNIX socket bound and listening (backlog 0) that never accepts, held by
 * a python3 child: Node's net.Server always accepts, so it cannot play this part.
 * Resolves once the child has called listen() (it says so on stdout).
 */
export async function rawListen(path: string): Promise<{ close(): void }> {
  const script = `import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.bind(${JSON.stringify(path)})\ns.listen(0)\nprint("listening",flush=True)\ntime.sleep(60)`;
  const { child } = await spawnReady(script, `rawListen(${path})`);
  return { close: () => child.kill() };
}

/**
 * The same on loopback TCP: once its accept queue is full, Linux drops further SYNs, so a
 * connect stays in progress (EINPROGRESS) until the caller's deadline.
 */
export async function rawListenTcp(): Promise<{ port: number; close(): void }> {
  const script = 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)';
  const { child, line } = await spawnReady(script, 'rawListenTcp()');
  return { port: Number(line), close: () => child.kill() };
}

/**
 * An AF_UNIX listener that accepts one connection, waits until the peer's first bytes have arrived
 * (MSG_PEEK: they stay unread) and closes with them still queued, so the kernel reports ECONNRESET
 * to the peer. Node cannot wait for data without reading it; a timer would race the peer's write.
 */
export async function resetOnUnreadData(path: string): Promise<{ close(): void }> {
  const script = `import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.bind(${JSON.stringify(path)})\ns.listen(1)\nprint("listening",flush=True)\nc,_=s.accept()\nc.recv(1,socket.MSG_PEEK)\nc.close()\ntime.sleep(60)`;
  const { child } = await spawnReady(script, `resetOnUnreadData(${path})`);
  return { close: () => child.kill() };
}

/** How a stream ended for a reader that calls recv() until it returns 0 or fails: the kernel's answer, no event loop in between. */
export interface Observed {
  /** Everything read, as latin1 text. */
  data: string;
  /** `EOF` (recv returned 0: a FIN) or the errno name recv() failed with (`ECONNRESET`: a reset). */
  end: string;
  /** Server only: after an EOF it answers `bye`; `ok`, or the errno name that send() failed with (EPIPE: the peer closed both ways). */
  reply?: string;
}

// A plain recv() loop. Node's own sockets cannot be the observer: libuv 1.46 (Node 20) reports bytes
// and a RST that arrive in one poll wake-up as a clean end (the POLLHUP short-cut after a partial
// read in uv__stream_io, reworked upstream in libuv#4997), whoever sent them.
const OBSERVER = `import errno,json,socket,sys
def drain(c,data=b""):
    try:
        while True:
            b=c.recv(65536)
            if not b: return data,"EOF"
            data+=b
    except OSError as e: return data,errno.errorcode.get(e.errno,str(e.errno))
mode,family,rounds=sys.argv[1],sys.argv[2],int(sys.argv[3])
out=[]
if mode=="server":
    s=socket.socket(socket.AF_UNIX if family=="unix" else socket.AF_INET)
    s.bind(sys.argv[4] if family=="unix" else ("127.0.0.1",0)); s.listen(rounds)
    print(s.getsockname() if family=="unix" else s.getsockname()[1],flush=True)
    for _ in range(rounds):
        c,_=s.accept(); got=b""
        while len(got)<7:
            b=c.recv(7-len(got))
            if not b: break
            got+=b
        c.sendall(b"ok")
        data,end=drain(c,got); r={"data":data.decode("latin1"),"end":end}
        if end=="EOF":
            try: c.sendall(b"bye"); r["reply"]="ok"
            except OSError as e: r["reply"]=errno.errorcode.get(e.errno,str(e.errno))
        out.append(r); c.close()
else:
    for _ in range(rounds):
        c=socket.create_connection(("127.0.0.1",int(sys.argv[4]))); c.sendall(b"request")
        data,end=drain(c); out.append({"data":data.decode("latin1"),"end":end}); c.close()
print(json.dumps(out),flush=True)`;

function collect(child: PythonChild, what: string): Promise<Observed[]> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.once('close', (code) => {
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Observed[]);
      } catch {
        reject(new Error(`${what}: python3 exited (${code}) with ${JSON.stringify(stdout)}`));
      }
    });
  });
}

/**
 * A server that observes `rounds` connections one after the other: it reads `request` (7 bytes),
 * answers `ok`, then reads until EOF or an error (and after an EOF tries to answer `bye`). Resolves
 * once listening; `observed` resolves with one record per connection.
 */
export async function observingServer(rounds: number, at: { family: 'inet' } | { family: 'unix'; path: string }): Promise<{ port: number; observed: Promise<Observed[]>; close(): void }> {
  const { child, line } = await spawnReady(OBSERVER, 'observingServer()', ['server', at.family, String(rounds), ...(at.family === 'unix' ? [at.path] : [])]);
  return { port: at.family === 'inet' ? Number(line) : 0, observed: collect(child, 'observingServer()'), close: () => child.kill() };
}

/** A client that connects to 127.0.0.1:`port` `rounds` times, sends `request` and reads until EOF or an error. */
export async function observingClient(port: number, rounds: number): Promise<Observed[]> {
  const child = spawn('python3', ['-c', OBSERVER, 'client', 'inet', String(rounds), String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  return collect(child, 'observingClient()');
}
