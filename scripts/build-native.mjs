#!/usr/bin/env node
// Builds the native helper (build/Release/nitro_enclave.node) with node-gyp.
// As an install script it never fails the install: without a compiler, or off
// Linux, everything but the NSM device and vsock still works, and those throw
// ERR_NATIVE_UNAVAILABLE explaining how to build. With --required it fails loudly.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const required = process.argv.includes('--required');
const output = join(root, 'build', 'Release', 'nitro_enclave.node');
const sources = [join(root, 'native', 'nitro_enclave.c'), join(root, 'binding.gyp')];

function finish(message) {
  if (required) {
    console.error(`nitro-enclave-sdk: ${message}`);
    process.exit(1);
  }
  console.warn(`nitro-enclave-sdk: ${message} — the NSM and vsock features will report ERR_NATIVE_UNAVAILABLE.`);
  process.exit(0);
}

if (process.platform !== 'linux') finish(`the native helper is Linux-only (this is ${process.platform})`);
if (process.argv.includes('--sanitize')) {
  buildSanitized();
  process.exit(0);
}
if (existsSync(output) && sources.every((s) => statSync(s).mtimeMs <= statSync(output).mtimeMs)) process.exit(0); // up to date

function nodeGyp() {
  if (process.env.npm_config_node_gyp) return process.env.npm_config_node_gyp;
  for (const base of [dirname(process.execPath), '/usr/lib/node_modules/npm', '/usr/local/lib/node_modules/npm']) {
    const candidate = base.endsWith('npm') ? join(base, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js') : join(base, '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (existsSync(candidate)) return candidate;
  }
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    return null;
  }
}

const gyp = nodeGyp();
if (!gyp) finish('node-gyp was not found');
const args = [gyp, 'rebuild'];
const nodedir = process.env.npm_config_nodedir ?? (existsSync('/usr/include/node/node_api.h') ? '/usr' : undefined);
if (nodedir) args.push(`--nodedir=${nodedir}`);
const result = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
if (result.status !== 0) finish('building the native helper failed (it needs python3, make and a C compiler at build time)');

/**
 * --sanitize: the same source with AddressSanitizer and UndefinedBehaviorSanitizer, into its own
 * directory (build-sanitize/) so the normal addon is untouched. Compiled with cc directly: node-gyp
 * always writes to build/. Loading it needs the ASan runtime preloaded into node
 * (scripts/test-native-sanitize.mjs does that).
 */
function buildSanitized() {
  const outDir = join(root, 'build-sanitize');
  const target = join(outDir, 'nitro_enclave.node');
  const include = [process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'), '/usr/include/node', '/usr/local/include/node', join(dirname(process.execPath), '..', 'include', 'node'), join(process.env.HOME ?? '/root', '.cache', 'node-gyp', process.versions.node, 'include', 'node')].find(
    (dir) => dir && existsSync(join(dir, 'node_api.h')),
  );
  if (!include) {
    console.error('nitro-enclave-sdk: node_api.h not found (set npm_config_nodedir, or run `npx node-gyp install`)');
    process.exit(1);
  }
  mkdirSync(outDir, { recursive: true });
  const args = ['-shared', '-fPIC', '-std=gnu11', '-Wall', '-Wextra', '-g', '-O1', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', `-I${include}`, '-DNODE_GYP_MODULE_NAME=nitro_enclave', '-DBUILDING_NODE_EXTENSION', '-o', target, sources[0], '-lpthread', '-ldl'];
  const result = spawnSync(process.env.CC ?? 'cc', args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) {
    console.error('nitro-enclave-sdk: building the sanitized helper failed (it needs gcc with libasan and libubsan)');
    process.exit(1);
  }
  console.log(`built ${target}`);
}
