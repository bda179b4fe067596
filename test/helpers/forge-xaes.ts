// An independent XAES-256-GCM built on node-forge's pure-JS AES (not node:crypto), written from the
// C2SP text, so the project's implementation is checked against code it does not share.
import * as forgeNs from 'node-forge';

// node-forge is CommonJS: under Node ESM its API is the default export, under vitest's transform too.
const forge = ((forgeNs as unknown as { default?: typeof forgeNs }).default ?? forgeNs) as typeof forgeNs;

const bin = (b: Uint8Array) => Buffer.from(b).toString('binary');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'binary'));

function aesBlock(key: Uint8Array, block: Uint8Array): Uint8Array {
  const c = forge.cipher.createCipher('AES-ECB', bin(key));
  c.start();
  c.update(forge.util.createBuffer(bin(block)));
  // One block in, one block out: ECB emits it on update; finish() would only add padding.
  return bytes(c.output.getBytes(16));
}

export function forgeXaesDerive(key: Uint8Array, nonce: Uint8Array): { l: Uint8Array; k1: Uint8Array; kx: Uint8Array; nx: Uint8Array } {
  const l = aesBlock(key, new Uint8Array(16));
  const k1 = new Uint8Array(16);
  for (let i = 0; i < 16; i++) k1[i] = ((l[i]! << 1) | (i < 15 ? l[i + 1]! >> 7 : 0)) & 0xff;
  if (l[0]! >= 0x80) k1[15]! ^= 0x87;
  const m = (n: number) => {
    const block = new Uint8Array([0, n, 0x58, 0, ...nonce.subarray(0, 12)]);
    return aesBlock(key, block.map((b, i) => b ^ k1[i]!));
  };
  return { l, k1, kx: new Uint8Array([...m(1), ...m(2)]), nx: nonce.slice(12, 24) };
}

export function forgeXaesSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const { kx, nx } = forgeXaesDerive(key, nonce);
  const c = forge.cipher.createCipher('AES-GCM', bin(kx));
  c.start({ iv: bin(nx), additionalData: bin(aad), tagLength: 128 });
  c.update(forge.util.createBuffer(bin(plaintext)));
  c.finish();
  return new Uint8Array([...bytes(c.output.getBytes()), ...bytes((c.mode as unknown as { tag: { getBytes(): string } }).tag.getBytes())]);
}

export function forgeXaesOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | null {
  const { kx, nx } = forgeXaesDerive(key, nonce);
  const d = forge.cipher.createDecipher('AES-GCM', bin(kx));
  d.start({ iv: bin(nx), additionalData: bin(aad), tagLength: 128, tag: forge.util.createBuffer(bin(sealed.subarray(sealed.length - 16))) });
  d.update(forge.util.createBuffer(bin(sealed.subarray(0, sealed.length - 16))));
  return d.finish() ? bytes(d.output.getBytes()) : null;
}
