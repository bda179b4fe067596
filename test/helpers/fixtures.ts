import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** `../shared/fixtures` beside the project, or NITRO_FIXTURES_DIR; `null` when absent. */
export const fixturesDir: string | null = (() => {
  const candidate = process.env.NITRO_FIXTURES_DIR ?? resolve(here, '../../../shared/fixtures');
  return existsSync(join(candidate, 'nitro', 'manifest.json')) ? candidate : null;
})();

export const SKIP_MESSAGE =
  'shared fixtures not found (set NITRO_FIXTURES_DIR or place them at ../shared/fixtures): tests on real AWS material are skipped';

if (!fixturesDir) console.warn(`[nitro-enclave-sdk tests] ${SKIP_MESSAGE}`);

export function fixture(...parts: string[]): Uint8Array {
  if (!fixturesDir) throw new Error(SKIP_MESSAGE);
  return new Uint8Array(readFileSync(join(fixturesDir, ...parts)));
}

export function fixtureText(...parts: string[]): string {
  return new TextDecoder().decode(fixture(...parts));
}

export interface ManifestEntry {
  file: string;
  expect: string;
  timestamp_ms?: number;
  module_id?: string;
  debug_mode?: boolean;
  pcr0?: string;
  pcr_count?: number;
  cabundle_length?: number;
  leaf_not_before?: string;
  leaf_not_after?: string;
  public_key_bytes?: number | null;
  user_data_bytes?: number | null;
  nonce_bytes?: number | null;
  payload_indefinite_map?: boolean;
  signature_high_s?: boolean;
}

export function manifest(): ManifestEntry[] {
  return fixturesDir ? (JSON.parse(fixtureText('nitro', 'manifest.json')) as ManifestEntry[]) : [];
}

export const accepted = (): ManifestEntry[] => manifest().filter((e) => e.expect.startsWith('accept'));
