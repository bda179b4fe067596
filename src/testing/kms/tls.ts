import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { issueCertificate, KEY_USAGE } from '../pki.js';

export interface TestTlsMaterial {
  /** PEM of the test CA that clients must trust (and only in tests). */
  caPem: string;
  certPem: string;
  keyPem: string;
}

export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const body = Buffer.from(der).toString('base64').match(/.{1,64}/g)!.join('\n');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/**
 * A test CA and a server certificate for `hostnames` (e.g.
 * `kms.us-east-1.amazonaws.com`), so the real SDK connects with the real
 * hostname and SNI while trusting only this CA.
 */
export function createTestTls(hostnames: readonly string[], now = new Date()): TestTlsMaterial {
  const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const server = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caSubject = [['O', 'nitro-enclave-sdk'], ['CN', 'nitro-enclave-sdk TEST KMS CA (never trust outside tests)']] as const;
  const day = 86_400_000;
  const caDer = issueCertificate(
    { subject: caSubject, subjectPublicKey: ca.publicKey, notBefore: new Date(now.getTime() - day), notAfter: new Date(now.getTime() + 3650 * day), ca: { pathLength: 0 }, keyUsage: KEY_USAGE.keyCertSign | KEY_USAGE.cRLSign },
    ca.privateKey,
  );
  const certDer = issueCertificate(
    {
      subject: [['O', 'nitro-enclave-sdk TEST'], ['CN', hostnames[0]!]],
      issuer: caSubject,
      issuerPublicKey: ca.publicKey,
      subjectPublicKey: server.publicKey,
      notBefore: new Date(now.getTime() - day),
      notAfter: new Date(now.getTime() + 365 * day),
      ca: false,
      keyUsage: KEY_USAGE.digitalSignature,
      dnsNames: hostnames,
    },
    ca.privateKey,
  );
  return { caPem: toPem(caDer), certPem: toPem(certDer), keyPem: (server.privateKey as KeyObject).export({ format: 'pem', type: 'pkcs8' }).toString() };
}
