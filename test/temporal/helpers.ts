import { randomBytes } from 'node:crypto';
import { TrustedSessionKey } from '../../src/kms/trusted-session-key.js';

/** A TSK as getTrustedSessionKey would return it, from fresh random bytes; `raw` is kept only to prove it never leaks. */
export function makeTsk(): { tsk: TrustedSessionKey; raw: Buffer } {
  const raw = randomBytes(32);
  const tsk = new TrustedSessionKey(new Uint8Array(raw), { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/test', pcr0: '00'.repeat(48), moduleId: 'i-test-enc', obtainedAt: new Date(0) });
  return { tsk, raw };
}

/** Every form in which key material or a secret could show up in text. */
export function forms(secret: Uint8Array | string): string[] {
  const b = typeof secret === 'string' ? Buffer.from(secret) : Buffer.from(secret);
  return [b.toString('hex'), b.toString('base64'), b.toString('latin1')].filter((s) => s.length > 0);
}
