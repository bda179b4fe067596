// The documented byte layouts, checked by an independent reading: the message is parsed by hand and
// opened with RFC 9180's key schedule written out over node:crypto (ECDH, HMAC, AES-GCM), not with
// @hpke/core. A change to the layout, the info or the aad breaks this test.
import { createDecipheriv, createECDH, createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sealToEnclave } from '../../src/seal/index.js';
import { createSimulatedEnclave } from '../../src/testing/index.js';

const enc8 = (s: string) => Buffer.from(s, 'utf8');
const i2osp2 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();

function labeledExtract(suiteId: Buffer, salt: Buffer, label: string, ikm: Buffer): Buffer {
  return createHmac('sha256', salt).update(Buffer.concat([enc8('HPKE-v1'), suiteId, enc8(label), ikm])).digest();
}
function labeledExpand(suiteId: Buffer, prk: Buffer, label: string, info: Buffer, length: number): Buffer {
  // One HKDF-Expand block is enough for every length used here (≤ 32).
  const labeledInfo = Buffer.concat([i2osp2(length), enc8('HPKE-v1'), suiteId, enc8(label), info]);
  return createHmac('sha256', prk).update(Buffer.concat([labeledInfo, Buffer.from([1])])).digest().subarray(0, length);
}

describe('sealed message layout (v2, P-256) read independently', () => {
  it('version ‖ suite ids ‖ key id ‖ sealed-at ms ‖ message id ‖ enc ‖ ciphertext; info and aad as documented; opens with a hand-written RFC 9180 base-mode open', async () => {
    const recipient = createECDH('prime256v1');
    const pkR = recipient.generateKeys(); // uncompressed, 65 bytes
    const attestedKey = Buffer.concat([Buffer.from([1, 0x00, 0x10, 0x00, 0x01, 0x00, 0x02]), pkR]);
    const enclave = createSimulatedEnclave();
    const nonce = new Uint8Array(32).fill(5);
    const document = enclave.attest({ publicKey: attestedKey, nonce });
    const appInfo = enc8('agent:planner');
    const plaintext = enc8('independently checked');
    const sealedAt = Date.parse('2026-06-01T12:00:00.123Z');
    const message = Buffer.from(
      await sealToEnclave(document, plaintext, { expected: { pcrs: { 0: enclave.imageSha384 }, nonce }, trustAnchors: [enclave.trustAnchor], info: appInfo, clock: () => new Date(sealedAt) }),
    );

    expect([...message.subarray(0, 7)]).toEqual([2, 0x00, 0x10, 0x00, 0x01, 0x00, 0x02]);
    expect(message.subarray(7, 15)).toEqual(sha256(attestedKey).subarray(0, 8));
    expect(message.readBigUInt64BE(15)).toBe(BigInt(sealedAt)); // ms since the epoch, big-endian
    expect(message.subarray(23, 39).length).toBe(16); // random message id
    const enc = message.subarray(39, 104);
    expect(enc[0]).toBe(0x04);
    const ciphertext = message.subarray(104);
    expect(ciphertext.length).toBe(plaintext.length + 16);

    // DHKEM(P-256, HKDF-SHA256) Decap
    const kemSuite = Buffer.concat([enc8('KEM'), i2osp2(0x0010)]);
    const dh = recipient.computeSecret(enc);
    const eaePrk = labeledExtract(kemSuite, Buffer.alloc(0), 'eae_prk', dh);
    const sharedSecret = labeledExpand(kemSuite, eaePrk, 'shared_secret', Buffer.concat([enc, pkR]), 32);
    // Key schedule, mode_base, info = label ‖ SHA-256(attested key) ‖ application info
    const suite = Buffer.concat([enc8('HPKE'), i2osp2(0x0010), i2osp2(0x0001), i2osp2(0x0002)]);
    const info = Buffer.concat([enc8('nitro-enclave-sdk/seal v1\0'), sha256(attestedKey), appInfo]);
    const context = Buffer.concat([
      Buffer.from([0]),
      labeledExtract(suite, Buffer.alloc(0), 'psk_id_hash', Buffer.alloc(0)),
      labeledExtract(suite, Buffer.alloc(0), 'info_hash', info),
    ]);
    const secret = labeledExtract(suite, sharedSecret, 'secret', Buffer.alloc(0));
    const key = labeledExpand(suite, secret, 'key', context, 32);
    const baseNonce = labeledExpand(suite, secret, 'base_nonce', context, 12);
    // AES-256-GCM, sequence 0, aad = every byte before the ciphertext
    const decipher = createDecipheriv('aes-256-gcm', key, baseNonce);
    decipher.setAAD(message.subarray(0, 104));
    decipher.setAuthTag(ciphertext.subarray(-16));
    const opened = Buffer.concat([decipher.update(ciphertext.subarray(0, -16)), decipher.final()]);
    expect(opened.toString('utf8')).toBe('independently checked');
  });
});
