import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pcr8FromCertificate } from '../../src/parent/pcr8.js';
import { fixturesDir, SKIP_MESSAGE } from '../helpers/fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'nes-pcr8-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * PCR8 as the image format specifies it (aws-nitro-enclaves-image-format README, "EIF Measurements":
 * PCR8 = sha384(48 zero bytes ‖ sha384(signing certificate in DER))), computed by OpenSSL's command line
 * only, independently of our code.
 */
function opensslPcr8(pemFile: string): string {
  const der = execFileSync('openssl', ['x509', '-in', pemFile, '-outform', 'DER']);
  const contentDigest = execFileSync('openssl', ['dgst', '-sha384', '-binary'], { input: der });
  const out = execFileSync('openssl', ['dgst', '-sha384', '-r'], { input: Buffer.concat([Buffer.alloc(48), contentDigest]) }).toString();
  return out.split(' ')[0]!;
}

describe('pcr8FromCertificate', () => {
  it('matches OpenSSL on a signing certificate made as the nitro-cli docs make one (secp384r1, self-signed), PEM and DER', () => {
    const key = join(tmp, 'key.pem');
    const cert = join(tmp, 'cert.pem');
    execFileSync('openssl', ['ecparam', '-name', 'secp384r1', '-genkey', '-out', key]);
    execFileSync('openssl', ['req', '-new', '-x509', '-key', key, '-sha384', '-days', '30', '-subj', '/CN=enclave-signer/O=test', '-out', cert]);
    const expected = opensslPcr8(cert);
    expect(expected).toMatch(/^[0-9a-f]{96}$/);
    expect(pcr8FromCertificate(readFileSync(cert))).toBe(expected);
    expect(pcr8FromCertificate(readFileSync(cert, 'utf8'))).toBe(expected);
    const der = execFileSync('openssl', ['x509', '-in', cert, '-outform', 'DER']);
    expect(pcr8FromCertificate(new Uint8Array(der))).toBe(expected);
    // nitro-cli reads the first certificate of the PEM (X509::from_pem).
    const chain = join(tmp, 'chain.pem');
    writeFileSync(chain, readFileSync(cert, 'utf8') + (fixturesDir ? readFileSync(join(fixturesDir, 'nitro', 'aws-nitro-root.pem'), 'utf8') : ''));
    expect(pcr8FromCertificate(readFileSync(chain))).toBe(expected);
  });

  it.skipIf(!fixturesDir)(`matches OpenSSL on a real certificate (the AWS Nitro root)${fixturesDir ? '' : ` (${SKIP_MESSAGE})`}`, () => {
    const root = join(fixturesDir!, 'nitro', 'aws-nitro-root.pem');
    expect(pcr8FromCertificate(readFileSync(root))).toBe(opensslPcr8(root));
  });

  it('refuses what is not a certificate with TypeError', () => {
    expect(() => pcr8FromCertificate('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toThrow('certificate must be an X.509 certificate in PEM or DER');
    expect(() => pcr8FromCertificate(new Uint8Array(10))).toThrow(TypeError);
  });
});
