export { NitroEnclaveError } from '../errors.js';
export type { NitroEnclaveErrorCode } from '../errors.js';
export { buildKeyPolicy, RECIPIENT_ACTIONS } from './key-policy.js';
export type { KeyPolicyOptions } from './key-policy.js';
export { evaluatePolicy, parsePolicy, PolicySyntaxError } from '../internal/iam-policy.js';
export type { PolicyDocument, PolicyStatement, RequestContext, Decision } from '../internal/iam-policy.js';
export { serveParentCredentials } from './credentials-server.js';
export type { CredentialsServerOptions } from './credentials-server.js';
export { PARENT_CREDENTIALS_PORT } from '../internal/parent-wire.js';
