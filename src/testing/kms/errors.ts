/**
 * A KMS error as the JSON 1.1 protocol carries it: `__type` and `message` in
 * the body, and the type in `x-amzn-errortype`.
 */
export class KmsError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}
