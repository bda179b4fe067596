import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FRAME, FRAME_PIECE_BYTES, FrameBudget, frameHeader, FrameReader } from '../../src/workflow/protocol.js';

const frame = (type: number, id: number, body: Uint8Array) => Buffer.concat([frameHeader(type, id, body.length), body]);

describe('FrameReader', () => {
  it('reads the same frames however the stream is cut (fast-check: random frames, random chunk sizes)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ type: fc.integer({ min: 0, max: 255 }), id: fc.integer({ min: 0, max: 0xffffffff }), body: fc.uint8Array({ maxLength: 40_000 }) }), { maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 50_000 }), { minLength: 1, maxLength: 20 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map((f) => frame(f.type, f.id, f.body)));
          const budget = new FrameBudget(1024 * 1024);
          const reader = new FrameReader(64 * 1024, { budget });
          const out: Array<{ type: number; id: number; body: Buffer }> = [];
          let o = 0;
          for (let i = 0; o < stream.length; i++) {
            const n = cuts[i % cuts.length]!;
            for (const f of reader.push(stream.subarray(o, o + n))) {
              expect(f.error).toBeUndefined();
              out.push({ type: f.type, id: f.id, body: Buffer.from(f.body!) });
              budget.release(f.held!);
            }
            o += n;
          }
          expect(out).toEqual(frames.map((f) => ({ type: f.type, id: f.id, body: Buffer.from(f.body) })));
          expect([reader.buffered, reader.partial, budget.used]).toEqual([0, false, 0]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('one-byte writes: the budget is charged the bytes received rounded up to one piece, never what the header claims', () => {
    const budget = new FrameBudget(64 * 1024 * 1024);
    const reader = new FrameReader(8 * 1024 * 1024, { budget });
    const head = frameHeader(FRAME.CALL, 9, 8 * 1024 * 1024 - 9);
    for (const b of head) expect(reader.push(Buffer.from([b]))).toEqual([]);
    expect([budget.used, reader.partial, reader.partialId]).toEqual([0, true, 9]);
    for (let i = 1; i <= 40_000; i++) {
      reader.push(Buffer.from([i & 0xff]));
      expect(budget.used).toBe(Math.ceil(i / FRAME_PIECE_BYTES) * FRAME_PIECE_BYTES);
    }
    reader.dispose();
    expect(budget.used).toBe(0);
  });

  it('stops at a header over the limit (before any of its body) and at a frame over the budget, each with its code and id', () => {
    const reader = new FrameReader(1024);
    const [tooLarge, ...rest] = reader.push(Buffer.concat([frameHeader(FRAME.CALL, 5, 0xfffffff0), Buffer.alloc(100)]));
    expect(rest).toEqual([]);
    expect([tooLarge!.id, tooLarge!.error!.code, tooLarge!.error!.message]).toEqual([5, 'ERR_ACTIVITY_TOO_LARGE', 'frame of 4294967289 bytes is over the 1024-byte limit']);
    expect(reader.push(frame(FRAME.CALL, 6, new Uint8Array(1)))).toEqual([]); // stopped

    const budget = new FrameBudget(1000);
    const small = new FrameReader(4096, { budget });
    const events = small.push(Buffer.concat([frame(FRAME.CALL, 1, new Uint8Array(600)), frame(FRAME.CALL, 2, new Uint8Array(600))]));
    expect(events.map((e) => [e.id, e.error?.code ?? 'frame'])).toEqual([
      [1, 'frame'],
      [2, 'ERR_ACTIVITY_OVERLOADED'],
    ]);
    expect(budget.used).toBe(600); // the first frame's bytes, until its owner releases them
    budget.release(events[0]!.held!);
    expect(budget.used).toBe(0);
  });

  it('a length too short to hold type and id is dropped with the bytes it claims, reported as type 0, and the next frame reads', () => {
    const reader = new FrameReader(1024);
    const events = reader.push(Buffer.concat([Buffer.from([0, 0, 0, 2, 0xaa, 0xbb]), frame(FRAME.CANCEL, 3, new Uint8Array(0))]));
    expect(events.map((e) => [e.type, e.id, e.body?.length])).toEqual([
      [0, 0, 0],
      [FRAME.CANCEL, 3, 0],
    ]);
  });
});
