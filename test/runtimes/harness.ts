/**
 * Runs one bundled "script" in real JavaScript runtimes: Node, Deno, Bun, workerd and
 * headless Chromium. A script is an ES module (TypeScript is fine) that exports
 *
 *     export async function run(input: unknown): Promise<unknown>   // JSON in, JSON out
 *
 * and uses only what the portable verifier may use (WebCrypto, Uint8Array, no `node:`).
 * {@link bundleScript} bundles it once with esbuild for `platform: 'browser'` (failing on any
 * `node:` import), and {@link RUNTIMES} run that one file everywhere.
 *
 * Plugging in a second corpus (e.g. the seal helper's "a message sealed in that runtime
 * opens in Node"):
 *
 *     // test/runtimes/seal-script.ts
 *     export async function run(input: { document: string }) { ...seal in this runtime...; return { message } }
 *
 *     // test/runtimes/seal.test.ts
 *     const script = await bundleScript('test/runtimes/seal-script.ts');
 *     for (const runtime of RUNTIMES) describeRuntime(runtime, () => {
 *       it('opens in Node', async () => { const out = await runtime.run(script, input); ...open out.message in Node... });
 *     });
 *
 * `describeRuntime` (describe-runtime.ts) applies the skip rule: with CI=true a missing runtime FAILS; elsewhere it
 * is skipped with a loud warning, never passed silently.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
// No vitest import here: `npm run bench` loads this file too (bundled by bench/runtimes.mjs).

/** The project root: the nearest package.json named nitro-enclave-sdk (bench/runtimes.mjs loads a bundled copy of this file). */
const root = ((): string => {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'nitro-enclave-sdk') return dir;
    if (dirname(dir) === dir) throw new Error('project root (package.json of nitro-enclave-sdk) not found');
  }
})();
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const IN_CI = process.env.CI === 'true';

/** One bundled script on disk. */
export interface Script {
  readonly dir: string;
  readonly file: string;
  readonly code: string;
}

/**
 * Bundles `entry` (relative to the project root) as one browser ES module; throws on any `node:` import.
 * `plugins` run first (e.g. a shim for a dependency's dead Node-only fallback).
 */
export async function bundleScript(entry: string, { plugins = [] }: { plugins?: Plugin[] } = {}): Promise<Script> {
  const dir = mkdtempSync(join(tmpdir(), 'nes-runtime-'));
  const file = join(dir, 'script.mjs');
  const nodeImports: string[] = [];
  await build({
    entryPoints: [resolve(root, entry)],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile: file,
    logLevel: 'silent',
    plugins: [
      ...plugins,
      {
        name: 'refuse-node-builtins',
        setup(b) {
          b.onResolve({ filter: /^node:|^(fs|path|crypto|buffer|util|os|child_process|net|stream|process)$/ }, (args) => {
            nodeImports.push(`${args.path} (from ${args.importer})`);
            return { path: args.path, external: true };
          });
        },
      },
    ],
  });
  if (nodeImports.length) throw new Error(`the portable bundle imports Node built-ins: ${nodeImports.join(', ')}`);
  return { dir, file, code: readFileSync(file, 'utf8') };
}

export interface Runtime {
  readonly name: string;
  /** `null` when usable, else why not. */
  missing(): string | null;
  /** Runs `script.run(input)` in a fresh instance of the runtime. */
  run(script: Script, input: unknown): Promise<unknown>;
  /** A long-lived instance, for benchmarks: many calls, one start-up. */
  session(script: Script): Promise<Session>;
}

export interface Session {
  call(input: unknown): Promise<unknown>;
  close(): Promise<void>;
}

const MARK = '@@RESULT@@';

function exec(cmd: string, args: string[], cwd: string, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`${cmd} exited with ${code}: ${err.slice(-2000)}`));
      else resolvePromise(out);
    });
  });
}

function parseResult(stdout: string): unknown {
  const at = stdout.lastIndexOf(MARK);
  if (at < 0) throw new Error(`no result in output: ${stdout.slice(-500)}`);
  const result = JSON.parse(stdout.slice(at + MARK.length)) as { ok: boolean; output?: unknown; error?: string };
  if (!result.ok) throw new Error(`script failed in the runtime: ${result.error}`);
  return result.output;
}

/** An entry that runs the script on an input held in a file next to it, for CLI runtimes. */
function cliEntry(script: Script, input: unknown): string {
  const name = `entry-${Math.random().toString(36).slice(2)}.mjs`;
  writeFileSync(join(script.dir, `${name}.json`), JSON.stringify(input));
  writeFileSync(
    join(script.dir, name),
    [
      `import { run } from './script.mjs';`,
      // Each runtime reads the input its own way; only the test entry differs, never the script.
      `const path = new URL('./${name}.json', import.meta.url);`,
      `const text = typeof Deno !== 'undefined' ? await Deno.readTextFile(path) : await (await import('node:fs/promises')).readFile(path, 'utf8');`,
      `let result;`,
      `try { result = { ok: true, output: await run(JSON.parse(text)) }; } catch (e) { result = { ok: false, error: String(e && e.stack || e) }; }`,
      `console.log(${JSON.stringify(MARK)} + JSON.stringify(result));`,
    ].join('\n'),
  );
  return name;
}

function cliRuntime(name: string, command: () => string, args: (entry: string, script: Script) => string[]): Runtime {
  const runtime: Runtime = {
    name,
    missing: () => (existsSync(command()) ? null : `${command()} not found (npm ci installs the ${name} package)`),
    async run(script, input) {
      const entry = cliEntry(script, input);
      return parseResult(await exec(command(), args(entry, script), script.dir));
    },
    async session(script) {
      return { call: (input) => runtime.run(script, input), close: async () => {} };
    },
  };
  return runtime;
}

const node = cliRuntime('node', () => process.execPath, (entry) => [entry]);
const deno = cliRuntime('deno', () => bin('deno'), (entry, script) => ['run', '--quiet', '--no-prompt', '--no-config', '--no-lock', `--allow-read=${script.dir}`, entry]);
const bun = cliRuntime('bun', () => bin('bun'), (entry) => ['run', '--silent', entry]);

async function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createNetServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolvePromise(port));
    });
  });
}

async function waitFor(url: string, deadline: number): Promise<void> {
  for (;;) {
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${url} did not come up: ${String(err)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const workerd: Runtime = {
  name: 'workerd',
  missing: () => (existsSync(bin('workerd')) ? null : `${bin('workerd')} not found (npm ci installs the workerd package)`),
  async run(script, input) {
    const s = await workerd.session(script);
    try {
      return await s.call(input);
    } finally {
      await s.close();
    }
  },
  async session(script) {
    const port = await freePort();
    writeFileSync(
      join(script.dir, 'worker.mjs'),
      `import { run } from './script.mjs';
export default {
  async fetch(request) {
    if (request.method !== 'POST') return new Response('ready');
    try { return Response.json({ ok: true, output: await run(await request.json()) }); }
    catch (e) { return Response.json({ ok: false, error: String(e && e.stack || e) }); }
  },
};`,
    );
    // No nodejs_compat flag: the verifier must work on plain workerd.
    writeFileSync(
      join(script.dir, 'config.capnp'),
      `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const worker :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "worker.mjs"),
    (name = "script.mjs", esModule = embed "script.mjs"),
  ],
  compatibilityDate = "2025-09-01",
);`,
    );
    const child = spawn(bin('workerd'), ['serve', 'config.capnp'], { cwd: script.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const exited = new Promise<void>((r) => child.on('close', () => r()));
    const url = `http://127.0.0.1:${port}/`;
    try {
      await waitFor(url, Date.now() + 30_000);
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`workerd did not start: ${String(err)} ${stderr.slice(-1000)}`);
    }
    return {
      async call(input) {
        const r = await fetch(url, { method: 'POST', body: JSON.stringify(input) });
        return parseResult(MARK + (await r.text()));
      },
      async close() {
        child.kill('SIGTERM');
        await exited;
      },
    };
  },
};

const CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const chromium: Runtime = {
  name: 'chromium',
  missing: () => (existsSync(CHROMIUM) ? null : `${CHROMIUM} not found (apt-get install chromium; .ci/run does)`),
  async run(script, input) {
    const s = await chromium.session(script);
    try {
      return await s.call(input);
    } finally {
      await s.close();
    }
  },
  async session(script) {
    const { chromium: pw } = await import('playwright-core');
    const server: Server = createServer((req, res) => {
      if (req.url === '/script.mjs') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(script.code);
      } else {
        // The page imports the script itself: evaluate() then only calls a global, so nothing the
        // test runner transforms (vitest rewrites import()) ever runs in the browser.
        res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>runtime harness</title>
<script type="module">
import { run } from '/script.mjs';
window.__call = async (text) => {
  try { return JSON.stringify({ ok: true, output: await run(JSON.parse(text)) }); }
  catch (e) { return JSON.stringify({ ok: false, error: String((e && e.stack) || e) }); }
};
</script>`);
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const profile = mkdtempSync(join(tmpdir(), 'nes-chromium-'));
    const context = await pw.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ['--headless', ...CHROMIUM_FLAGS] });
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${origin}/`);
    await page.waitForFunction('typeof window.__call === "function"', undefined, { timeout: 30_000 });
    return {
      async call(input) {
        const result = (await page.evaluate(`window.__call(${JSON.stringify(JSON.stringify(input))})`)) as string;
        return parseResult(MARK + result);
      },
      async close() {
        await context.close();
        await new Promise<void>((r) => server.close(() => r()));
        rmSync(profile, { recursive: true, force: true });
      },
    };
  },
};

/** Node first: it is the reference every other runtime is compared with. */
export const RUNTIMES: readonly Runtime[] = [node, deno, bun, workerd, chromium];

