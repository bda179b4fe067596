// TSK envelope v2 (XAES-256-GCM) encrypt against raw AES-256-GCM at 64 KiB, interleaved, 5 repetitions.
//   floor:   the leanest raw node:crypto AES-256-GCM: a cipher under a random 96-bit nonce, the
//            caller's AAD, one update(), final(), the tag (ciphertext and tag left in two buffers,
//            no message assembled, no concat);
//   message: the same written as nonce ‖ ciphertext ‖ tag into one fresh buffer: the least any
//            one-buffer envelope costs with node:crypto, which has no encrypt-into-buffer.
//   gcm:     the envelope's own AES-256-GCM (src/internal/gcm.ts: the native helper's when built,
//            which encrypts into the buffer) writing nonce ‖ ciphertext ‖ tag: the physical limit.
// The former v1 encrypt is replayed for reference (why it was slow: docs/performance-notes.md).
import { createCipheriv, randomBytes, randomFillSync } from 'node:crypto';
import { defaultGcm } from '../dist/internal/gcm.js';
import { TrustedSessionKey } from '../dist/kms/index.js';
import { repeated, row } from './lib.mjs';

export async function benchEnvelope({ size = 64 * 1024, batch = 20, reps = 5 } = {}) {
  console.log(`\n## TSK envelope encrypt, ${size / 1024} KiB plaintext (per message: medians of batches of ${batch}; ${reps} interleaved repetitions, [min–max])`);
  const key = randomBytes(32);
  const tsk = new TrustedSessionKey(Buffer.from(key), { keyArn: 'bench', pcr0: '00', moduleId: 'bench', obtainedAt: new Date() });
  const plaintext = randomBytes(size);
  const aad = Buffer.from('workflow-binding');
  const keyId = Buffer.from(tsk.metadata.keyId, 'hex');
  const gcm = defaultGcm();
  let sink = 0;
  const r = await repeated(
    {
      floor() {
        for (let i = 0; i < batch; i++) {
          const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
          c.setAAD(aad);
          const body = c.update(plaintext);
          c.final();
          sink += body.length + c.getAuthTag().length;
        }
      },
      message() {
        for (let i = 0; i < batch; i++) {
          const out = Buffer.allocUnsafeSlow(12 + plaintext.length + 16);
          const nonce = randomBytes(12);
          out.set(nonce);
          const c = createCipheriv('aes-256-gcm', key, nonce);
          c.setAAD(aad);
          const body = c.update(plaintext);
          c.final();
          out.set(body, 12);
          out.set(c.getAuthTag(), 12 + body.length);
          sink += out.length;
        }
      },
      gcm() {
        for (let i = 0; i < batch; i++) {
          const out = Buffer.allocUnsafeSlow(12 + plaintext.length + 16);
          randomFillSync(out, 0, 12);
          gcm.seal(key, out.subarray(0, 12), [aad], [plaintext], out, 12);
          sink += out.length;
        }
      },
      v2() {
        for (let i = 0; i < batch; i++) sink += tsk.encrypt(plaintext, aad).length;
      },
      v1() {
        for (let i = 0; i < batch; i++) {
          const header = Buffer.alloc(21);
          header[0] = 1;
          keyId.copy(header, 1);
          randomBytes(12).copy(header, 9);
          const c = createCipheriv('aes-256-gcm', key, header.subarray(9, 21));
          c.setAAD(Buffer.concat([header, aad]));
          const body = Buffer.concat([c.update(plaintext), c.final()]);
          sink += new Uint8Array(Buffer.concat([header, body, c.getAuthTag()])).length;
        }
      },
    },
    { reps, rounds: 60, warmup: 10 },
  );
  row('floor: raw AES-256-GCM (one update, no message)', r.floor, { scale: batch });
  row('AES-256-GCM message nonce‖ct‖tag in one buffer', r.message, { scale: batch, vs: r.floor });
  row(`${gcm.name} GCM message nonce‖ct‖tag (the envelope's GCM)`, r.gcm, { scale: batch, vs: r.floor });
  row('TSK envelope v2 encrypt (XAES-256-GCM)', r.v2, { scale: batch, vs: r.floor, goal: { max: 1.1 }, name: `TSK envelope encrypt, ${size / 1024} KiB (x raw GCM)` });
  row('former v1 encrypt (concatenations, extra copy)', r.v1, { scale: batch, vs: r.floor });
  tsk.dispose();
  return sink;
}

if (import.meta.url === new URL(process.argv[1], 'file://').href) await benchEnvelope();
