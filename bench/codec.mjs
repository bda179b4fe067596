// The Temporal TSK payload codec (encode + decode of one Payload) against raw AES-256-GCM
// encrypt + decrypt of the same data bytes (floor), interleaved in one run.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { TrustedSessionKey } from '../dist/kms/trusted-session-key.js';
import { createTskPayloadCodec } from '../dist/temporal/index.js';
import { fmt, interleaved, line } from './lib.mjs';

export async function benchCodec() {
  console.log('\n## Temporal payload codec (createTskPayloadCodec encode+decode) vs raw AES-256-GCM encrypt+decrypt of the same bytes');
  const raw = randomBytes(32);
  const tsk = new TrustedSessionKey(new Uint8Array(raw), { keyArn: 'arn:aws:kms:us-east-1:111122223333:key/bench', pcr0: '00'.repeat(48), moduleId: 'bench', obtainedAt: new Date() });
  const key = Buffer.from(raw); // the TSK took ownership of `raw`; the floor keeps its own copy
  const codec = createTskPayloadCodec({ keys: tsk });
  const encoding = new TextEncoder().encode('binary/plain');
  for (const [label, size, rounds, goal] of [['1 KiB', 1024, 3000, 2], ['64 KiB', 64 * 1024, 600, 1.2], ['1 MiB', 1024 * 1024, 120, 1.2]]) {
    const data = randomBytes(size);
    const payload = { metadata: { encoding }, data };
    const r = await interleaved(
      {
        floor: () => {
          const iv = randomBytes(12);
          const c = createCipheriv('aes-256-gcm', key, iv);
          const ct = Buffer.concat([c.update(data), c.final()]);
          const d = createDecipheriv('aes-256-gcm', key, iv);
          d.setAuthTag(c.getAuthTag());
          Buffer.concat([d.update(ct), d.final()]);
        },
        codec: async () => {
          const [decoded] = await codec.decode(await codec.encode([payload]));
          if (decoded.data.length !== size) throw new Error('codec round trip lost bytes');
        },
      },
      { rounds, warmup: Math.ceil(rounds / 10) },
    );
    line(`floor: AES-256-GCM encrypt+decrypt, ${label}`, fmt(r.floor.median));
    line(`codec encode+decode, ${label}`, fmt(r.codec.median), `${(r.codec.median / r.floor.median).toFixed(2)} x floor (goal <= ${goal})`);
  }
  tsk.dispose();
  key.fill(0);
}
