export { NitroEnclaveError } from '../errors.js';
export type { NitroEnclaveErrorCode, TlsErrorCode } from '../errors.js';
export { createAttestedTlsIdentity, DEFAULT_REATTEST_INTERVAL_MS } from './identity.js';
export type { AttestedTlsIdentity, AttestedTlsIdentityOptions, AttestedTlsOptions, IdentityTimers } from './identity.js';
export { createAttestedPeerVerifier, DEFAULT_MAX_AGE_MS } from './peer.js';
export type { AttestedPeerOptions, AttestedPeerVerifier } from './peer.js';
export { connectAttested } from './connect.js';
export type { AttestedClientOptions, ConnectAttestedOptions } from './connect.js';
export { createAttestedHttpsAgent } from './agent.js';
export type { AttestedAgentOptions } from './agent.js';
export { createAttestedDispatcher } from './dispatcher.js';
export type { AttestedDispatcherOptions } from './dispatcher.js';
export { createAttestedTlsServer, createAttestedHttpsServer } from './server.js';
export type { AttestedTlsServerOptions } from './server.js';
export { readAttestedCertificate } from './certificate.js';
export type { AttestedCertificateParts } from './certificate.js';
export {
  ATTESTATION_EXTENSION_OID,
  CERTIFICATE_BINDING_LABEL,
  SESSION_BINDING_LABEL,
  SESSION_EXPORTER_LABEL,
  SESSION_EXPORTER_LENGTH,
  SESSION_NONCE_LENGTH,
  WELL_KNOWN_PATH,
  DOCUMENT_MEDIA_TYPE,
  certificateBinding,
  sessionBinding,
} from './wire.js';
