import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptCiphertextForRecipient, parseEnvelopedData } from '../../src/kms/cms.js';
import { fixture, fixturesDir } from '../helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'nes-cms-'));
const keyPem = join(tmp, 'key.pem');
const certPem = join(tmp, 'cert.pem');
const plaintextFile = join(tmp, 'plain.bin');
const plaintext = new Uint8Array(Array.from({ length: 77 }, (_, i) => i));

/** `args` are options; -keyopt entries must follow -recip, so they are moved there. */
function opensslEncrypt(name: string, args: string[]): Uint8Array {
  const out = join(tmp, `${name}.der`);
  const options: string[] = [];
  const keyopts: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '-keyopt') keyopts.push(args[i]!, args[++i]!);
    else options.push(args[i]!);
  }
  execFileSync('openssl', ['cms', '-encrypt', '-binary', '-in', plaintextFile, '-outform', 'DER', '-out', out, ...options, '-recip', certPem, ...keyopts], { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Uint8Array(readFileSync(out));
}

const OAEP = ['-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256', '-keyopt', 'rsa_mgf1_md:sha256'];

beforeAll(() => {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPem, '-out', certPem, '-subj', '/CN=nitro-enclave-sdk cms test', '-days', '1'], { stdio: 'ignore' });
  writeFileSync(plaintextFile, plaintext);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const key = () => createPrivateKey(readFileSync(keyPem));
const codeOf = async (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code);

describe.skipIf(!fixturesDir)('AWS C SDK KMS envelopes (../shared/fixtures/cms)', () => {
  for (const suffix of ['', '_w_ctx']) {
    it(`extracts exactly the expected wrapped key, IV and ciphertext from sdkc_input_ber${suffix}.bin`, () => {
      const env = parseEnvelopedData(fixture('cms', `sdkc_input_ber${suffix}.bin`));
      expect(env.version).toBe(2);
      expect(env.recipients).toHaveLength(1);
      expect(env.recipients[0]!.version).toBe(2);
      expect((env.recipients[0]!.recipientId as { keyIdentifier: Uint8Array }).keyIdentifier).toHaveLength(32);
      expect(env.recipients[0]!.encryptedKey).toEqual(fixture('cms', `sdkc_encrypted_key_out${suffix}.bin`));
      expect(env.iv).toEqual(fixture('cms', `sdkc_iv_out${suffix}.bin`));
      expect(env.encryptedContent).toEqual(fixture('cms', `sdkc_ciphertext_out${suffix}.bin`));
    });
  }

  it('fails to open them with an unrelated key, with the uniform error', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await expect(decryptCiphertextForRecipient(fixture('cms', 'sdkc_input_ber.bin'), privateKey)).rejects.toMatchObject({
      code: 'ERR_CMS_DECRYPT_FAILED',
      message: 'CMS EnvelopedData could not be decrypted with this private key',
    });
  });

  it('rejects truncations and trailing garbage as ERR_CMS_MALFORMED', () => {
    const blob = fixture('cms', 'sdkc_input_ber.bin');
    for (let n = 0; n < blob.length - 2; n += 7) expect(() => parseEnvelopedData(blob.subarray(0, n)), `length ${n}`).toThrow(expect.objectContaining({ code: 'ERR_CMS_MALFORMED' }));
    expect(() => parseEnvelopedData(new Uint8Array([...blob, 0, 0, 0]))).not.toThrow(); // end-of-contents padding is tolerated
    expect(() => parseEnvelopedData(new Uint8Array([...blob, 1]))).toThrow(expect.objectContaining({ code: 'ERR_CMS_MALFORMED', message: expect.stringContaining('trailing bytes') }));
  });
});

describe('envelopes made by the OpenSSL CLI', () => {
  it('opens DER with a 20-byte subjectKeyIdentifier (-keyid) and no NULL parameters', async () => {
    const der = opensslEncrypt('keyid', ['-keyid', '-aes256', ...OAEP]);
    const env = parseEnvelopedData(der);
    expect(env.recipients[0]).toMatchObject({ version: 2, recipientId: { type: 'subjectKeyIdentifier' } });
    expect((env.recipients[0]!.recipientId as { keyIdentifier: Uint8Array }).keyIdentifier).toHaveLength(20);
    expect(await decryptCiphertextForRecipient(der, key())).toEqual(plaintext);
  });

  it('opens -stream BER (indefinite lengths, chunked content)', async () => {
    const ber = opensslEncrypt('stream', ['-stream', '-keyid', '-aes256', ...OAEP]);
    expect(Buffer.from(ber.subarray(0, 2)).toString('hex')).toBe('3080');
    expect(await decryptCiphertextForRecipient(ber, key())).toEqual(plaintext);
  });

  it('opens v0 issuerAndSerialNumber recipients, and takes a CryptoKey', async () => {
    const der = opensslEncrypt('issuer', ['-aes256', ...OAEP]);
    expect(parseEnvelopedData(der).recipients[0]).toMatchObject({ version: 0, recipientId: { type: 'issuerAndSerialNumber' } });
    const pkcs8 = key().export({ format: 'der', type: 'pkcs8' });
    const cryptoKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSA-OAEP', hash: 'SHA-256' }, false, ['decrypt']);
    expect(await decryptCiphertextForRecipient(der, cryptoKey)).toEqual(plaintext);
  });

  it('rejects other algorithms as ERR_CMS_UNSUPPORTED_ALGORITHM', async () => {
    expect(await codeOf(decryptCiphertextForRecipient(opensslEncrypt('aes128', ['-keyid', '-aes128', ...OAEP]), key()))).toBe('ERR_CMS_UNSUPPORTED_ALGORITHM');
    expect(await codeOf(decryptCiphertextForRecipient(opensslEncrypt('pkcs1', ['-keyid', '-aes256']), key()))).toBe('ERR_CMS_UNSUPPORTED_ALGORITHM');
    expect(await codeOf(decryptCiphertextForRecipient(opensslEncrypt('sha1', ['-keyid', '-aes256', '-keyopt', 'rsa_padding_mode:oaep']), key()))).toBe('ERR_CMS_UNSUPPORTED_ALGORITHM');
  });

  it('gives one indistinguishable error for a wrong key and for bad padding', async () => {
    const der = opensslEncrypt('pad', ['-keyid', '-aes256', ...OAEP]);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const wrongKey = await decryptCiphertextForRecipient(der, privateKey).catch((e: Error) => e);
    const env = parseEnvelopedData(der);
    // Corrupt the last ciphertext block so the CBC padding check fails.
    const at = Buffer.from(der).lastIndexOf(Buffer.from(env.encryptedContent.subarray(-16)));
    const bad = new Uint8Array(der);
    bad[at + 15]! ^= 0x55;
    const badPadding = await decryptCiphertextForRecipient(bad, key()).catch((e: Error) => e);
    expect(wrongKey).toMatchObject({ code: 'ERR_CMS_DECRYPT_FAILED' });
    expect(badPadding).toMatchObject({ code: 'ERR_CMS_DECRYPT_FAILED' });
    expect((badPadding as Error).message).toBe((wrongKey as Error).message);
  });

  it('requires an IV and an RSA private key', async () => {
    const der = opensslEncrypt('noiv', ['-keyid', '-aes256', ...OAEP]);
    const env = Buffer.from(der);
    const ivAt = env.indexOf(Buffer.concat([Buffer.from([0x04, 0x10]), Buffer.from(parseEnvelopedData(der).iv)]));
    const broken = Buffer.concat([env.subarray(0, ivAt), Buffer.from([0x05, 0x00]), env.subarray(ivAt + 18)]);
    expect(() => parseEnvelopedData(new Uint8Array(broken))).toThrow(expect.objectContaining({ code: 'ERR_CMS_MALFORMED' }));
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await expect(decryptCiphertextForRecipient(der, privateKey)).rejects.toThrow(TypeError);
  });
});
