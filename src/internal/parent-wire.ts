/**
 * The wire format between the enclave's credential client (`kms/parent-credentials.ts`) and the
 * parent's credentials server (`parent/credentials-server.ts`): one request line per connection,
 * one JSON answer, then the server closes. It lives here so that neither side imports the other.
 */

/** Port the parent's credentials server listens on by default (vsock). */
export const PARENT_CREDENTIALS_PORT = 8002;

/** The longest answer the client reads: credentials and a TSK blob are a few KiB. */
export const MAX_ANSWER_BYTES = 64 * 1024;

/** The longest request line the server reads. */
export const MAX_REQUEST_BYTES = 256;

/** A file name the parent may offer. */
export const FILE_NAME = /^[\w.-]{1,64}$/;

export const CREDENTIALS_REQUEST = 'GET credentials';

export const fileRequest = (name: string): string => `GET file ${name}`;

/** The file a request line asks for, if it is a file request. */
export const requestedFile = (line: string): string | undefined => /^GET file ([\w.-]{1,64})$/.exec(line)?.[1];

/** The credentials answer, in the shape of the instance metadata service's. */
export interface WireCredentials {
  AccessKeyId: string;
  SecretAccessKey: string;
  SessionToken?: string;
  Expiration?: string;
}

/** A file answer (`Data` is base64), or a refusal to serve one. */
export interface WireFile {
  Name?: string;
  Data?: string;
  Error?: string;
}

/** The answer to a request the server does not serve. */
export const NOT_FOUND = 'NotFound';
