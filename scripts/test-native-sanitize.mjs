#!/usr/bin/env node
// npm run test:native:sanitize — the native tests (test/native, test/vsock) against the helper built
// with AddressSanitizer + UndefinedBehaviorSanitizer (build-sanitize/, see build-native.mjs --sanitize).
// node itself is not instrumented, so the ASan runtime is preloaded into every node process the
// tests start. Reports go to files (log_path) as well as stderr, so one from a child process whose
// exit status a test ignores still counts: any report fails this script.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build-sanitize', 'nitro_enclave.node');
const reports = join(root, 'build-sanitize', 'reports');
const fail = (message) => {
  console.error(`test:native:sanitize: ${message}`);
  process.exit(1);
};

const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), '--sanitize'], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) fail('the sanitized build failed');

const cc = process.env.CC ?? 'cc';
const libasan = spawnSync(cc, ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout.trim();
if (!libasan.startsWith('/') || !existsSync(libasan)) fail(`${cc} has no libasan.so (Debian: apt-get install libasan8 libubsan1)`);

rmSync(reports, { recursive: true, force: true });
mkdirSync(reports, { recursive: true });
const env = {
  ...process.env,
  NITRO_ENCLAVE_NATIVE: addon,
  LD_PRELOAD: [libasan, process.env.LD_PRELOAD].filter(Boolean).join(' '),
  // node and the tools the tests run (python3, cc) leak at exit by design: leak checking is off.
  // Tests skip RSS bounds under the sanitizer: its quarantine keeps freed memory resident.
  NITRO_ENCLAVE_SANITIZED: '1',
  ASAN_OPTIONS: `detect_leaks=0:halt_on_error=1:abort_on_error=0:log_path=${join(reports, 'asan')}:log_exe_name=1`,
  UBSAN_OPTIONS: `halt_on_error=1:print_stacktrace=1:log_path=${join(reports, 'ubsan')}:log_exe_name=1`,
};

// The instrumented addon, not the normal one, must be what the tests load.
const probe = spawnSync(process.execPath, ['--input-type=module', '-e', `
  const { loadNative } = await import(${JSON.stringify(join(root, 'dist', 'internal', 'native.js'))});
  loadNative();
  const maps = (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8');
  console.log(JSON.stringify({ asan: maps.includes('libasan'), ubsan: maps.includes('libubsan'), addon: maps.includes(${JSON.stringify(addon)}) }));
`], { cwd: root, env, encoding: 'utf8' });
let loaded;
try {
  loaded = JSON.parse(probe.stdout);
} catch {
  fail(`cannot load the sanitized addon (run \`npm run build\` first): ${probe.stderr}`);
}
if (!loaded.asan || !loaded.ubsan || !loaded.addon) fail(`the sanitized addon is not what loads: ${JSON.stringify(loaded)}`);

// gcc's UBSan, linked beside ASan, writes to stderr whatever log_path says: the output is scanned too.
const REPORT = /runtime error:|ERROR: AddressSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer/;
const vitest = spawn(process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/native', 'test/vsock'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
let printed = 0;
for (const [from, to] of [[vitest.stdout, process.stdout], [vitest.stderr, process.stderr]]) {
  from.on('data', (chunk) => {
    to.write(chunk);
    printed += String(chunk).split('\n').filter((line) => REPORT.test(line)).length;
  });
}
const [code, signal] = await new Promise((resolve) => vitest.on('close', (c, s) => resolve([c, s])));

const found = readdirSync(reports);
for (const file of found) console.error(`\n== ${file}\n${readFileSync(join(reports, file), 'utf8')}`);
if (found.length || printed) fail(`sanitizer reports: ${found.length} file(s) listed above, ${printed} line(s) in the test output`);
if (code !== 0) fail(`the native tests failed under the sanitizers (exit ${code ?? signal})`);
console.log('test:native:sanitize: native tests passed under ASan + UBSan with zero reports');
