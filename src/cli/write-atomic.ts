import { closeSync, existsSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { UsageError } from './io.js';

/** Writes via a temp file in the same directory, fsync, then rename: readers never see half a file. */
export function writeFileAtomic(path: string, data: Uint8Array | string, opts: { mode: number; force: boolean }): void {
  if (!opts.force && existsSync(path)) throw new UsageError(`${path} exists; refusing to overwrite it (use --force)`);
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', opts.mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}
