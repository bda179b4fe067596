// The key ring lives in the kms layer (sealed state uses it too); the codec's subpath re-exports it.
export { createTskKeyRing, isTskKeyRing, toKeyRing } from '../kms/key-ring.js';
export type { CodecKey, TskKeyRing } from '../kms/key-ring.js';
