import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PIECE_BYTES, PieceBuffer } from '../../src/internal/pieces.js';

describe('PieceBuffer (codec server bodies, the parent credentials answer)', () => {
  it('holds one-byte writes in fixed pieces: allocated ≤ bytes + one piece, and joins them exactly', () => {
    const data = randomBytes(100_000);
    const b = new PieceBuffer();
    for (let i = 0; i < data.length; i++) {
      b.push(data.subarray(i, i + 1));
      expect(b.allocated).toBeLessThanOrEqual(b.length + PIECE_BYTES);
    }
    expect(b.length).toBe(100_000);
    expect(b.allocated).toBe(Math.ceil(100_000 / PIECE_BYTES) * PIECE_BYTES);
    expect(b.take().equals(data)).toBe(true);
    expect([b.length, b.allocated]).toEqual([0, 0]);
  });

  it('takes chunks larger than a piece', () => {
    const data = randomBytes(3 * PIECE_BYTES + 5);
    const b = new PieceBuffer();
    b.push(data.subarray(0, 7));
    b.push(data.subarray(7));
    expect(b.take().equals(data)).toBe(true);
  });
});
