// nitro-enclave-sdk/workflow: the enclave side of confidential workflows (sealed agent state and
// the sealed-activity server). Loads no Temporal package; the parent side is ./parent.
export { NitroEnclaveError } from '../errors.js';
export type { NitroEnclaveErrorCode, WorkflowErrorCode } from '../errors.js';
export { sealState, openState, peekStateBinding, SEALED_STATE_FORMAT } from './sealed-state.js';
export type { SealingKeys, ExpectedBinding, OpenedState } from './sealed-state.js';
export { MAX_BINDING_FIELD_BYTES, CHAIN_ID_BYTES, newChainId, encodeBinding } from './binding.js';
export type { StateBinding } from './binding.js';
export { serveSealedActivities, openHandlerError, DEFAULT_ACTIVITY_LIMITS } from './server.js';
export type { SealedActivityContext, SealedActivityHandler, SealedActivityLimits, SealedActivityResult, SealedActivityServer, ServeSealedActivitiesOptions, HandlerErrorDetails, RelayTimers } from './server.js';
export { DEFAULT_MAX_MESSAGE_BYTES, FRAME_PIECE_BYTES } from './protocol.js';
