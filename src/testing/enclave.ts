import { createHash, sign, type KeyObject } from 'node:crypto';
import { fromHex } from '../internal/bytes.js';
import { sigStructure } from '../attestation/cose-sign1.js';
import { encodeCbor, encodeIndefiniteMap } from './cbor.js';
import { createTestPki, type TestPki } from './pki.js';

/** Options of {@link createSimulatedEnclave}. */
export interface SimulatedEnclaveOptions {
  /** The PKI that signs documents; default: a fresh {@link createTestPki}. */
  pki?: TestPki;
  /** PCR index → value (48 bytes or hex). Unlisted PCRs of 0..15 are zero. Default PCR0..2: hashes of a test image. */
  pcrs?: Readonly<Record<number, Uint8Array | string>>;
  /** All PCRs zero, as a debug-mode enclave reports them. */
  debugMode?: boolean;
  /** The clock of the simulated hypervisor. Default: `() => new Date()`. */
  clock?: () => Date;
  moduleId?: string;
  /** Emit the payload as an indefinite-length map, as newer NSM versions do. */
  indefiniteLengthPayload?: boolean;
}

/** What the NSM's Attestation request carries. */
export interface AttestationRequest {
  publicKey?: Uint8Array | null;
  userData?: Uint8Array | null;
  nonce?: Uint8Array | null;
}

/** A simulated enclave: PCRs, a clock, and an NSM signing key chain. */
export interface SimulatedEnclave {
  readonly pki: TestPki;
  /** The root certificate (DER) to pass as `trustAnchors` to the verifier. */
  readonly trustAnchor: Uint8Array;
  readonly moduleId: string;
  /** The current PCR values (index → 48 bytes), mutable through the simulated NSM. */
  readonly pcrs: Map<number, Uint8Array>;
  /** PCR0 as lower-case hex: the `kms:RecipientAttestation:ImageSha384` value. */
  readonly imageSha384: string;
  readonly clock: () => Date;
  /** Produces a signed attestation document, byte-compatible in structure with AWS's. */
  attest(request?: AttestationRequest): Uint8Array;
}

/**
 * The PCR0 of the default simulated image: SHA-384 of a fixed label.
 *
 * @example
 * ```ts
 * const enclave = createSimulatedEnclave({ pcrs: { 0: testImagePcr('image v2') } });
 * ```
 */
export function testImagePcr(label: string): Uint8Array {
  return new Uint8Array(createHash('sha384').update(`nitro-enclave-sdk test ${label}`).digest());
}

function pcrBytes(index: number, value: Uint8Array | string): Uint8Array {
  const bytes = typeof value === 'string' ? fromHex(value) : value;
  if (!bytes || bytes.length !== 48) throw new TypeError(`pcrs[${index}] must be 48 bytes (SHA-384) or its hex`);
  return new Uint8Array(bytes);
}

/**
 * Signs `payload` as an untagged COSE_Sign1 with ES384, the way the NSM does.
 *
 * @example
 * ```ts
 * const forged = signCoseSign1(payload, leaf.privateKey); // e.g. a negative test with your own chain
 * ```
 */
export function signCoseSign1(payload: Uint8Array, key: KeyObject): Uint8Array {
  const protectedBytes = encodeCbor(new Map([[1, -35]]));
  const signature = sign('sha384', sigStructure(protectedBytes, payload), { key, dsaEncoding: 'ieee-p1363' });
  return encodeCbor([protectedBytes, new Map(), payload, new Uint8Array(signature)]);
}

/** How long a simulated enclave signs with one leaf (its leaves are valid 3 h, as AWS's). */
const LEAF_REUSE_MS = 2 * 60 * 60 * 1000;

/**
 * Creates a simulated Nitro enclave whose attestation documents the real
 * verifier accepts when given `trustAnchors: [enclave.trustAnchor]` — and
 * rejects with the default AWS anchor.
 *
 * @example
 * ```ts
 * const enclave = createSimulatedEnclave({ pcrs: { 0: myPcr0 } });
 * const doc = enclave.attest({ nonce });
 * await verifyAttestationDocument(doc, { trustAnchors: [enclave.trustAnchor], nonce });
 * ```
 */
export function createSimulatedEnclave(options: SimulatedEnclaveOptions = {}): SimulatedEnclave {
  const clock = options.clock ?? (() => new Date());
  if (typeof clock !== 'function') throw new TypeError('clock must be a function returning a Date');
  const pki = options.pki ?? createTestPki({ currentDate: clock() });
  const pcrs = new Map<number, Uint8Array>();
  for (let i = 0; i < 16; i++) pcrs.set(i, new Uint8Array(48));
  if (!options.debugMode) {
    pcrs.set(0, testImagePcr('image'));
    pcrs.set(1, testImagePcr('kernel'));
    pcrs.set(2, testImagePcr('application'));
    for (const [key, value] of Object.entries(options.pcrs ?? {})) {
      const index = Number(key);
      if (!Number.isInteger(index) || index < 0 || index > 31) throw new TypeError(`pcrs: ${key} is not an index 0..31`);
      pcrs.set(index, pcrBytes(index, value));
    }
  }
  const moduleId = options.moduleId ?? 'i-00000000000000000-enc0000000000000000';
  // Like the real NSM, one leaf signs the documents of a stretch of time: the AWS documents in
  // ../shared/fixtures carry leaves issued from 3 s up to 2 h 22 min before their timestamps, each
  // valid 3 h. A leaf is reused while the document's time is within LEAF_REUSE_MS of its start
  // (the clock is injectable and may go back: a time before it gets a new leaf).
  let leaf: ReturnType<typeof pki.issueLeaf> | null = null;
  let leafFrom = 0;
  const leafAt = (now: Date) => {
    const t = now.getTime();
    if (leaf === null || t < leafFrom || t - leafFrom >= LEAF_REUSE_MS) {
      leafFrom = Math.floor(t / 1000) * 1000 - 3000;
      leaf = pki.issueLeaf(new Date(leafFrom));
    }
    return leaf;
  };
  return {
    pki,
    trustAnchor: pki.root.der,
    moduleId,
    pcrs,
    get imageSha384() {
      return Buffer.from(pcrs.get(0)!).toString('hex');
    },
    clock,
    attest(request = {}) {
      const now = clock();
      const leaf = leafAt(now);
      const entries = new Map<string, unknown>([
        ['module_id', moduleId],
        ['digest', 'SHA384'],
        ['timestamp', now.getTime()],
        // Like the real NSM, documents carry PCRs 0..15 (16+ are the enclave's own, see the simulated NSM).
        ['pcrs', new Map([...pcrs].filter(([i]) => i < 16).sort(([a], [b]) => a - b))],
        ['certificate', leaf.der],
        ['cabundle', [...pki.cabundle]],
        ['public_key', request.publicKey ?? null],
        ['user_data', request.userData ?? null],
        ['nonce', request.nonce ?? null],
      ]);
      const payload = options.indefiniteLengthPayload ? encodeIndefiniteMap(entries) : encodeCbor(entries);
      return signCoseSign1(payload, leaf.privateKey);
    },
  };
}
