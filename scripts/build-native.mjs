#!/usr/bin/env node
// Builds the native helper (build/Release/nitro_enclave.node) with node-gyp.
// As an install script it never fails the install: without a compiler, or off
// Linux, everything but the NSM device and vsock still works, and those throw
// ERR_NATIVE_UNAVAILABLE explaining how to build. With --required it fails loudly.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
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
