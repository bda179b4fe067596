// nitro-enclave-sdk/workflow/parent: the parent instance's side of confidential workflows. Loads
// @temporalio/activity and @temporalio/common (optional peer dependencies); never a key.
export { NitroEnclaveError } from '../../errors.js';
export type { NitroEnclaveErrorCode, WorkflowErrorCode } from '../../errors.js';
export { createSealedActivities } from './activities.js';
export type { CreateSealedActivitiesOptions, SealedActivity } from './activities.js';
export { createEnclaveSlotSupplier } from './availability.js';
export type { EnclaveRetryOptions, EnclaveSlotSupplier, EnclaveSlotSupplierOptions } from './availability.js';
export { createSealedActivityClient, SealedActivityClient, SealedActivityError } from './client.js';
export type { SealedActivityClientOptions, SealedCall, SealedCallOptions, SealedCallResult } from './client.js';
export { peekStateBinding } from '../sealed-state.js';
export type { StateBinding } from '../binding.js';
