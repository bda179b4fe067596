export { createTestPki, issueCertificate, encodeName, KEY_USAGE } from './pki.js';
export type { TestPki, TestPkiOptions, TestCertificate, IssueCertificateOptions, NameAttributes } from './pki.js';
export { createSimulatedEnclave, signCoseSign1, testImagePcr } from './enclave.js';
export type { SimulatedEnclave, SimulatedEnclaveOptions, AttestationRequest } from './enclave.js';
