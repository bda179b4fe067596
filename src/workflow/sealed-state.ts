import { NitroEnclaveError, type WorkflowErrorCode } from '../errors.js';
import { isTskKeyRing, type TskKeyRing } from '../kms/key-ring.js';
import { isTrustedSessionKey, openInDomain, sealInDomain, TSK_ENVELOPE_VERSION, type TrustedSessionKey } from '../kms/trusted-session-key.js';
import { checkChainId, decodeBinding, encodeBinding, type StateBinding } from './binding.js';

/**
 * The key(s) for sealed state: one {@link TrustedSessionKey}, or several for a rotation. A
 * {@link TskKeyRing} (e.g. from `TrustedSessionKeyClient.getKeyRing`) seals with its newest key
 * and may grow while in use; an array seals with its first key. Either opens with the key its
 * envelope names by key id.
 */
export type SealingKeys = TrustedSessionKey | readonly TrustedSessionKey[] | TskKeyRing;

/** What the opener expects; every field is required, so no binding goes unchecked. */
export interface ExpectedBinding {
  readonly workflowId: string;
  /**
   * The chain (run) the state must belong to: the `chainId` the chain's first state was sealed with.
   * `null` accepts any chain, only for a step in the middle of a chain that copies the chain id
   * forward (as `serveSealedActivities` does); whoever opens a chain's final state must name it, or
   * a state from another run of the same workflow id opens.
   */
  readonly chainId: string | null;
  /** This step's activity name (the agent opening the state). */
  readonly activity: string;
  /** This step's sequence number. */
  readonly seq: number;
  /** The agent(s) whose state this step accepts. */
  readonly producer: string | readonly string[];
}

/** An opened state: the plaintext (zero it when done) and its authenticated binding. */
export interface OpenedState {
  readonly plaintext: Uint8Array;
  readonly binding: StateBinding;
}

/**
 * Sealed state format 1 (byte-level spec: docs/formats.md):
 *
 *   offset 0      1 byte   format = 0x01
 *   offset 1      2 bytes  B = binding length (u16, big-endian)
 *   offset 3      B bytes  binding, in clear (encodeBinding)
 *   offset 3 + B  rest     TSK envelope v2 of the state in the domain
 *                          "nitro-enclave-sdk/workflow/sealed-state", data = bytes [0, 3 + B)
 *
 * The binding is readable by the host (workflow id, chain id, activity names, step numbers, agent
 * names: all but the chain id are what Temporal already shows it) and authenticated by the
 * envelope's tag. The envelope's domain keeps it apart from every `tsk.encrypt(x, aad)`.
 *
 * @example
 * ```ts
 * sealed[0] === SEALED_STATE_FORMAT; // 1
 * ```
 */
export const SEALED_STATE_FORMAT = 1;
const PREFIX = 3;
const MIN_ENVELOPE = 1 + 8 + 24 + 16; // the shortest TSK envelope v2 (header and tag)

const KEYS_TYPE = 'key must be a TrustedSessionKey, a non-empty array of them or a non-empty TskKeyRing';

function sealingKey(keys: SealingKeys): TrustedSessionKey {
  const key = Array.isArray(keys) ? (keys as readonly TrustedSessionKey[])[0] : isTskKeyRing(keys) ? keys.newest : keys;
  if (!isTrustedSessionKey(key)) throw new TypeError(KEYS_TYPE);
  return key;
}

/**
 * Checks the shape of sealing keys up front (a TypeError, as for any bad option), e.g. when a
 * server starts; a ring is checked as it is now (it may still grow).
 *
 * @example
 * ```ts
 * checkSealingKeys(ring); // throws TypeError while the ring is empty
 * ```
 */
export function checkSealingKeys(keys: SealingKeys): void {
  sealingKey(keys);
  if (Array.isArray(keys) && !keys.every(isTrustedSessionKey)) throw new TypeError(KEYS_TYPE);
}

/** The key the envelope's key id names, from one key, an array or a ring. */
function openingKey(keys: SealingKeys, id: string): { key: TrustedSessionKey | undefined; held: readonly string[] } {
  if (isTskKeyRing(keys)) {
    if (keys.newest === undefined) throw new TypeError(KEYS_TYPE);
    const key = keys.get(id);
    if (key !== undefined && !isTrustedSessionKey(key)) throw new TypeError(KEYS_TYPE);
    return { key, held: keys.keyIds };
  }
  const list = Array.isArray(keys) ? (keys as readonly TrustedSessionKey[]) : [keys as TrustedSessionKey];
  if (list.length === 0 || !list.every(isTrustedSessionKey)) throw new TypeError(KEYS_TYPE);
  return { key: list.find((k) => k.metadata.keyId === id), held: list.map((k) => k.metadata.keyId) };
}

/**
 * Seals agent state with the TSK, bound to `binding` (the step that will consume it).
 *
 * @example
 * ```ts
 * const chainId = newChainId(); // a new chain: keep it to check the final state
 * const sealed = sealState(tsk, new TextEncoder().encode('{"topic":"x"}'), {
 *   workflowId: 'research-42', chainId, activity: 'research', seq: 0, producer: 'client',
 * });
 * ```
 */
export function sealState(key: SealingKeys, plaintext: Uint8Array, binding: StateBinding): Uint8Array {
  const tsk = sealingKey(key);
  if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext must be a Uint8Array');
  // format ‖ length ‖ binding: the state's clear prefix, and the data authenticated in its domain.
  const prefix = encodeBinding(binding, PREFIX);
  const b = prefix.length - PREFIX;
  prefix[0] = SEALED_STATE_FORMAT;
  prefix[1] = b >> 8;
  prefix[2] = b & 0xff;
  return sealInDomain(tsk, 'sealedState', prefix, plaintext, prefix);
}

/**
 * Reads a sealed state's binding WITHOUT authenticating it: for routing and logs only (e.g. on the
 * parent, which has no key), never for decisions. {@link openState} is the authenticated read.
 *
 * @example
 * ```ts
 * const { workflowId, chainId, activity, seq, producer } = peekStateBinding(sealed); // host side: unverified
 * ```
 */
export function peekStateBinding(sealed: Uint8Array): StateBinding {
  return decodeBinding(split(sealed).binding);
}

function split(sealed: Uint8Array): { prefix: Uint8Array; binding: Uint8Array; envelope: Uint8Array } {
  if (!(sealed instanceof Uint8Array)) throw new TypeError('sealed state must be a Uint8Array');
  if (sealed.length < PREFIX) throw new NitroEnclaveError('ERR_SEALED_MALFORMED', `sealed state is ${sealed.length} bytes, shorter than its header`);
  if (sealed[0] !== SEALED_STATE_FORMAT) throw new NitroEnclaveError('ERR_SEALED_MALFORMED', `sealed state format ${sealed[0]} is not supported (expected ${SEALED_STATE_FORMAT})`);
  const b = (sealed[1]! << 8) | sealed[2]!;
  if (sealed.length < PREFIX + b + 1) throw new NitroEnclaveError('ERR_SEALED_MALFORMED', `sealed state is ${sealed.length} bytes, too short for its ${b}-byte binding and an envelope`);
  return { prefix: sealed.subarray(0, PREFIX + b), binding: sealed.subarray(PREFIX, PREFIX + b), envelope: sealed.subarray(PREFIX + b) };
}

// Only shape checks: an expected value that could never be sealed simply never matches.
function checkExpected(expect: ExpectedBinding): readonly string[] {
  if (!expect || typeof expect !== 'object') throw new TypeError('expect must be an object');
  if (typeof expect.workflowId !== 'string' || !expect.workflowId) throw new TypeError('expect.workflowId must be a non-empty string');
  if (expect.chainId !== null) checkChainId(expect.chainId, 'expect.chainId (or null for any chain, mid-chain only)');
  if (typeof expect.activity !== 'string' || !expect.activity) throw new TypeError('expect.activity must be a non-empty string');
  if (!Number.isSafeInteger(expect.seq) || expect.seq < 0) throw new TypeError('expect.seq must be a non-negative safe integer');
  const producers = typeof expect.producer === 'string' ? [expect.producer] : expect.producer;
  if (!Array.isArray(producers) || producers.length === 0 || producers.some((p) => typeof p !== 'string' || !p)) throw new TypeError('expect.producer must be a non-empty string or a non-empty array of them');
  return producers;
}

/**
 * Opens a sealed state and checks that it belongs where the opener is: this workflow, this run of
 * it (chain id, unless `null`), this step, from an agent this step accepts. Each refusal has its own
 * code.
 *
 * Why the checks come after decryption: the binding travels in clear so that a mismatch can be
 * named, but until the tag verifies it is just bytes from the host, and naming a mismatch from it
 * would let the host choose our error. So the envelope is opened first with the binding bytes *as
 * carried* as AAD; only a state this key sealed with exactly that binding passes. From then on the
 * decoded binding is authentic, and comparing it with the opener's expectations tells which one
 * differs. A state that fails authentication (tampered, truncated, other key) is refused as
 * ERR_SEALED_DECRYPT_FAILED without naming any field. Refused plaintext is zeroed before throwing.
 *
 * Two refusals come before authentication, from clear bytes, and say nothing about authenticity:
 * ERR_SEALED_MALFORMED (the bytes cannot be a sealed state of this version) and ERR_SEALED_WRONG_KEY
 * (the envelope's clear key id names no key held). Kept apart from DECRYPT_FAILED on purpose: in a
 * key rotation they tell the operator which key to load; the host, who can corrupt any state
 * anyway, gains nothing by choosing them, and nothing opens.
 *
 * @example
 * ```ts
 * const { plaintext, binding } = openState(tsk, sealed, {
 *   workflowId: 'research-42', chainId, activity: 'analysis', seq: 1, producer: 'research',
 * });
 * try { use(plaintext); } finally { plaintext.fill(0); }
 * ```
 */
export function openState(key: SealingKeys, sealed: Uint8Array, expect: ExpectedBinding): OpenedState {
  const producers = checkExpected(expect);
  checkSealingKeys(key);
  const { prefix, binding: bindingBytes, envelope } = split(sealed);
  if (envelope[0] !== TSK_ENVELOPE_VERSION) throw new NitroEnclaveError('ERR_SEALED_MALFORMED', `sealed state holds a TSK envelope of version ${envelope[0]}; sealed state takes only version ${TSK_ENVELOPE_VERSION}`);
  if (envelope.length < MIN_ENVELOPE) throw new NitroEnclaveError('ERR_SEALED_MALFORMED', `sealed state envelope is ${envelope.length} bytes, shorter than a TSK envelope's header and tag`);
  // Choosing the key by the (unauthenticated) id only selects which key tries; a wrong pick cannot open.
  // ERR_SEALED_WRONG_KEY is therefore decided before authentication (see above).
  const id = Buffer.from(envelope.subarray(1, 9)).toString('hex');
  const { key: tsk, held } = openingKey(key, id);
  if (!tsk) throw new NitroEnclaveError('ERR_SEALED_WRONG_KEY', `sealed with key id ${id}, not in this key ring (${held.join(', ')})`);
  let plaintext: Uint8Array;
  try {
    plaintext = openInDomain(tsk, 'sealedState', envelope, prefix);
  } catch (err) {
    const code = (err as NitroEnclaveError).code;
    if (code === 'ERR_TSK_DISPOSED') throw err;
    if (code === 'ERR_TSK_MALFORMED') throw new NitroEnclaveError('ERR_SEALED_MALFORMED', `sealed state envelope: ${(err as Error).message}`);
    throw new NitroEnclaveError('ERR_SEALED_DECRYPT_FAILED', 'sealed state failed authentication (tampered or truncated, or its binding was altered)');
  }
  // Authentic from here on: this key sealed exactly these binding bytes.
  const binding = decodeBinding(bindingBytes);
  const refuse = (code: WorkflowErrorCode, message: string): never => {
    plaintext.fill(0);
    throw new NitroEnclaveError(code, message);
  };
  if (binding.workflowId !== expect.workflowId) refuse('ERR_SEALED_WRONG_WORKFLOW', `state belongs to workflow ${JSON.stringify(binding.workflowId)}, not ${JSON.stringify(expect.workflowId)}`);
  if (expect.chainId !== null && binding.chainId !== expect.chainId) refuse('ERR_SEALED_WRONG_CHAIN', `state belongs to chain ${binding.chainId} of workflow ${JSON.stringify(binding.workflowId)} (another run), not ${expect.chainId}`);
  if (binding.activity !== expect.activity) refuse('ERR_SEALED_WRONG_AGENT', `state is meant for activity ${JSON.stringify(binding.activity)}, not ${JSON.stringify(expect.activity)}`);
  if (binding.seq !== expect.seq) refuse('ERR_SEALED_WRONG_STEP', `state is for step ${binding.seq}, this is step ${expect.seq}`);
  if (!producers.includes(binding.producer)) refuse('ERR_SEALED_WRONG_PRODUCER', `state was produced by ${JSON.stringify(binding.producer)}; this step accepts ${producers.map((p) => JSON.stringify(p)).join(', ')}`);
  return { plaintext, binding };
}
