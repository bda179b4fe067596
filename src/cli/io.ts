import { readFileSync } from 'node:fs';
import { NitroEnclaveError } from '../errors.js';

/** Exit codes of the CLI (documented in docs/cli.md). */
export const EXIT = { OK: 0, ERROR: 1, USAGE: 2, POLICY_FAIL: 3, FINDINGS: 4, REFUSED: 5 } as const;

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<Uint8Array>;
  env: NodeJS.ProcessEnv;
}

export const processIo: Io = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return new Uint8Array(Buffer.concat(chunks));
  },
  env: process.env,
};

/** Reads `file`, or standard input for `-`. Accepts raw bytes, base64 or hex text (as attestation documents are often shared). */
export async function readInput(io: Io, file: string, { decodeText = true } = {}): Promise<Uint8Array> {
  const raw = file === '-' ? await io.readStdin() : new Uint8Array(readFileSync(file));
  if (!decodeText) return raw;
  const text = Buffer.from(raw).toString('latin1').trim();
  if (/^[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0 && text.length > 64) return new Uint8Array(Buffer.from(text, 'hex'));
  if (/^[A-Za-z0-9+/\r\n]+={0,2}$/.test(text) && text.length > 64) return new Uint8Array(Buffer.from(text, 'base64'));
  return raw;
}

export function hexArg(name: string, value: string | undefined, lengths?: number[]): Uint8Array | undefined {
  if (value === undefined) return undefined;
  const clean = value.replace(/^0x/, '');
  if (!/^[0-9a-fA-F]*$/.test(clean) || clean.length % 2 !== 0) throw new UsageError(`${name} must be hex`);
  const bytes = new Uint8Array(Buffer.from(clean, 'hex'));
  if (lengths && !lengths.includes(bytes.length)) throw new UsageError(`${name} must be ${lengths.join(' or ')} bytes (${lengths.map((l) => l * 2).join(' or ')} hex characters), got ${bytes.length}`);
  return bytes;
}

/** Parses repeated `--pcr i=hex` flags. */
export function pcrArgs(values: string[] | undefined): Record<number, string> {
  const out: Record<number, string> = {};
  for (const v of values ?? []) {
    const m = /^(\d{1,2})=(?:0x)?([0-9a-fA-F]+)$/.exec(v);
    if (!m || Number(m[1]) > 31) throw new UsageError(`--pcr expects <index 0..31>=<hex>, got "${v}"`);
    if (![64, 96, 128].includes(m[2]!.length)) throw new UsageError(`--pcr ${m[1]} must be 32, 48 or 64 bytes of hex`);
    out[Number(m[1])] = m[2]!.toLowerCase();
  }
  return out;
}

/** One clear line for an error, with its code. */
export function describeError(err: unknown): string {
  if (err instanceof NitroEnclaveError) return `${err.code}: ${err.message}`;
  if (err instanceof UsageError || err instanceof TypeError) return `usage: ${err.message}`;
  const e = err as { name?: string; message?: string };
  return `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v instanceof Date ? v.toISOString() : v), 2)}\n`;
}

/** A trust anchor file as the verifier takes it: PEM text, or DER bytes. */
export function readTrustAnchorFile(file: string): string | Uint8Array {
  const raw = readFileSync(file);
  return raw.includes('-----BEGIN') ? raw.toString('utf8') : new Uint8Array(raw);
}
