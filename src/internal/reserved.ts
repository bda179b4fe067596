// Attestation `user_data` the library gives a meaning to. Every label the library writes into a
// document's user_data starts with this prefix (test/tls/foreign-document.test.ts enumerates them),
// so an API that passes caller-chosen user_data to the NSM refuses it: a client of the enclave must
// never obtain a document that says what only the library may say (e.g. "this TLS key is mine").

/** ASCII prefix of every library-defined `user_data` label. */
export const RESERVED_USER_DATA_PREFIX = 'nitro-enclave-sdk/';

const prefix = new TextEncoder().encode(RESERVED_USER_DATA_PREFIX);

/** Whether `userData` begins with the library's reserved prefix. */
export function isReservedUserData(userData: Uint8Array): boolean {
  if (userData.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (userData[i] !== prefix[i]) return false;
  return true;
}
