export { NitroEnclaveError } from '../errors.js';
export type { NitroEnclaveErrorCode, NsmErrorCode } from '../errors.js';
export { createNsmClient, NSM_FIELD_MAX } from './client.js';
export type { NsmClient, NsmDescription } from './client.js';
export { openNsm, openNsmDevice } from './device.js';
export type { NsmDeviceOptions } from './device.js';
export { NSM_REQUEST_MAX, NSM_RESPONSE_MAX } from './transport.js';
export type { NsmTransport } from './transport.js';
