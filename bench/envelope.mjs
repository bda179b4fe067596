// TSK envelope v2 (XAES-256-GCM) encrypt against raw AES-256-GCM at 64 KiB, interleaved in one run.
//   floor:   bare node:crypto AES-256-GCM: a cipher under a random 96-bit nonce, update, final, tag
//            (ciphertext and tag left in two buffers, no message assembled);
//   message: the same written as nonce ‖ ciphertext ‖ tag into one fresh buffer: the least any
//            envelope costs with node:crypto, which has no encrypt-into-buffer.
// The former v1 encrypt is replayed for reference (why it was slow: see the README's Performance).
import { createCipheriv, randomBytes } from 'node:crypto';
import { TrustedSessionKey } from '../dist/kms/index.js';
import { fmt, interleaved, line } from './lib.mjs';

export async function benchEnvelope({ size = 64 * 1024, batch = 20 } = {}) {
  console.log(`\n## TSK envelope encrypt, ${size / 1024} KiB plaintext (per message, medians of batches of ${batch})`);
  const key = randomBytes(32);
  const tsk = new TrustedSessionKey(Buffer.from(key), { keyArn: 'bench', pcr0: '00', moduleId: 'bench', obtainedAt: new Date() });
  const plaintext = randomBytes(size);
  const aad = Buffer.from('workflow-binding');
  const keyId = Buffer.from(tsk.metadata.keyId, 'hex');
  let sink = 0;
  const results = await interleaved(
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
    { rounds: 300, warmup: 30 },
  );
  const per = (r) => r.median / batch;
  const ratio = (a, b) => (results[a].median / results[b].median).toFixed(2);
  line('floor: bare AES-256-GCM (node:crypto, no message)', fmt(per(results.floor)));
  line('AES-256-GCM message nonce‖ct‖tag in one buffer', fmt(per(results.message)), `${ratio('message', 'floor')} x floor`);
  line('TSK envelope v2 encrypt (XAES-256-GCM)', fmt(per(results.v2)), `${ratio('v2', 'floor')} x floor (goal <= 1.1) · ${ratio('v2', 'message')} x message`);
  line('former v1 encrypt (concatenations, extra copy)', fmt(per(results.v1)), `${ratio('v1', 'floor')} x floor`);
  tsk.dispose();
  return sink;
}

// Run in a fresh process by `npm run bench`: after the earlier sections (the KMS simulator, TLS,
// thousands of allocations) the allocator's state alone moved every 64 KiB case here by 4-6 x,
// floor included, which measures the heap's history rather than the envelope.
export async function benchEnvelopeIsolated() {
  const { execFileSync } = await import('node:child_process');
  process.stdout.write(execFileSync(process.execPath, [new URL(import.meta.url).pathname, '--run'], { encoding: 'utf8' }));
}

if (process.argv[2] === '--run' && import.meta.url === new URL(process.argv[1], 'file://').href) await benchEnvelope();
