export * from './attestation/index.js';
