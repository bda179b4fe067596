// Bytes that arrive in chunks of any size, kept in pieces of a fixed size: a peer writing one byte
// at a time costs one byte each (plus at most one partly filled piece), not one Buffer object each.
// Used by every reader of a peer's stream that is not the relay's FrameReader (which has its own).

/** Size of each piece. */
export const PIECE_BYTES = 16 * 1024;

/** Accumulates bytes up to a limit, then joins them once. */
export class PieceBuffer {
  #pieces: Buffer[] = [];
  #fill = 0;
  #length = 0;

  /** Bytes received so far. */
  get length(): number {
    return this.#length;
  }

  /** Bytes allocated for them (at most `length` + one piece). */
  get allocated(): number {
    return this.#pieces.reduce((n, p) => n + p.length, 0);
  }

  push(chunk: Uint8Array): void {
    let o = 0;
    while (o < chunk.length) {
      let piece = this.#pieces[this.#pieces.length - 1];
      if (!piece || this.#fill === piece.length) {
        piece = Buffer.allocUnsafe(PIECE_BYTES);
        this.#pieces.push(piece);
        this.#fill = 0;
      }
      const n = Math.min(piece.length - this.#fill, chunk.length - o);
      piece.set(chunk.subarray(o, o + n), this.#fill);
      this.#fill += n;
      o += n;
    }
    this.#length += chunk.length;
  }

  /** The bytes received, in one Buffer; the pieces are released. */
  take(): Buffer {
    const out = Buffer.concat(this.#pieces, this.#length);
    this.#pieces = [];
    this.#fill = 0;
    this.#length = 0;
    return out;
  }
}
