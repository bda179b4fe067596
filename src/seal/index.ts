export { NitroEnclaveError } from '../errors.js';
export type { NitroEnclaveErrorCode, SealErrorCode, AttestationErrorCode } from '../errors.js';
export { sealToEnclave, createEnclaveSealer } from './seal.js';
export type { SealToEnclaveOptions, SealExpectations, EnclaveSealer } from './seal.js';
export { createAttestedReceiver } from './receiver.js';
export type { AttestedReceiver, AttestedReceiverOptions, AttestingNsm } from './receiver.js';
export { DEFAULT_SUITE as DEFAULT_SEAL_SUITE } from './format.js';
export type { SealSuiteName } from './format.js';
