// Edits of a COSE_Sign1 attestation document for mutation tests (Node side: the mutation suite and
// the cross-runtime corpus builder share them).
import { decodeCbor, type CborKey, type CborValue } from '../../src/internal/cbor.js';
import { encodeCbor } from '../../src/testing/cbor.js';

/** The four parts of the COSE_Sign1 array, with the payload also decoded. */
export function parts(doc: Uint8Array) {
  const [prot, unprot, payload, sig] = decodeCbor(doc) as [Uint8Array, Map<CborKey, CborValue>, Uint8Array, Uint8Array];
  return { prot, unprot, payload: decodeCbor(payload) as Map<string, CborValue>, payloadBytes: payload, sig };
}

/** Re-encodes the document with a changed payload and the original (now wrong) signature. */
export function withPayload(doc: Uint8Array, change: (p: Map<string, CborValue>) => void): Uint8Array {
  const { prot, payload, sig } = parts(doc);
  change(payload);
  return encodeCbor([prot, new Map(), encodeCbor(payload), sig]);
}

/** A copy with one bit flipped at `offset`. */
export function flipAt(doc: Uint8Array, offset: number): Uint8Array {
  const copy = new Uint8Array(doc);
  copy[offset]! ^= 0x01;
  return copy;
}
