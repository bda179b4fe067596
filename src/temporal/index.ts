export { NitroEnclaveError } from '../errors.js';
export type { CodecErrorCode, NitroEnclaveErrorCode } from '../errors.js';
export { createTskKeyRing } from './key-ring.js';
export type { CodecKey, TskKeyRing } from './key-ring.js';
export { createTskPayloadCodec, ENCRYPTED_ENCODING, METADATA_CIPHER, METADATA_KEY_ID, TSK_CIPHER_TAG } from './payload-codec.js';
export type { TskPayloadCodecOptions } from './payload-codec.js';
export { createTskDataConverter, failureConverterPath } from './data-converter.js';
export { createCodecServer } from './codec-server.js';
export type { CodecServerAuthorization, CodecServerOptions, CodecServerRequest } from './codec-server.js';
