/**
 * Batches a connection's replies into as few socket writes as possible.
 *
 * Small replies (headers, error chunks, block status) are packed back to back into a pooled
 * "small" buffer; a read reply is its own pooled buffer with the header in front of the data
 * (see BufferPool headroom). `flush()` writes every pending segment between cork() and
 * uncork(), so one receive chunk's worth of replies leaves in one writev. Buffers go back to the
 * pool when the socket has sent the batch that last referenced them (socket writes complete in
 * order, so the last write's callback covers the whole batch).
 */
import type { Duplex } from 'node:stream';
import type { BufferPool } from './buffer-pool.js';

/** Data bytes of one small-reply buffer (its pool class). */
const smallBufferBytes = 16 * 1024;

export class ReplyWriter {
  private small: Buffer;
  private smallUsed = 0;
  private segmentStart = 0;
  private segments: Buffer[] = [];
  private release: Buffer[] = [];
  private flushScheduled = false;
  /** Bytes handed to the socket whose write has not completed. */
  private unsentBytes = 0;

  constructor(
    private readonly stream: Duplex,
    private readonly pool: BufferPool,
  ) {
    this.small = pool.take(smallBufferBytes);
  }

  /** Bytes queued in the socket but not yet sent: the connection stops reading when this grows. */
  get backlogBytes(): number {
    return this.unsentBytes;
  }

  /**
   * Reserves `bytes` in the small buffer and returns it with the position to write at; the
   * caller must fill exactly `bytes` from there. Replies larger than a small buffer must use
   * pushOwned instead.
   */
  reserve(bytes: number): { buffer: Buffer; at: number } {
    if (this.smallUsed + bytes > smallBufferBytes) {
      this.cutSmallSegment();
      this.release.push(this.small);
      this.small = this.pool.take(smallBufferBytes);
      this.smallUsed = 0;
      this.segmentStart = 0;
    }
    const at = this.smallUsed;
    this.smallUsed += bytes;
    return { buffer: this.small, at };
  }

  /** Queues `buffer.subarray(start, end)`; `buffer` (from the pool) is returned after sending. */
  pushOwned(buffer: Buffer, start: number, end: number): void {
    this.cutSmallSegment();
    this.segments.push(buffer.subarray(start, end));
    this.release.push(buffer);
  }

  /** Flushes on the next tick (for replies completed outside a receive pass). */
  scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes everything queued, corked into one batch. */
  flush(): void {
    this.cutSmallSegment();
    const segments = this.segments;
    if (segments.length === 0) return;
    this.segments = [];
    const release = this.release;
    this.release = [];
    if (this.stream.destroyed) {
      for (const buffer of release) this.pool.give(buffer);
      return;
    }
    let batchBytes = 0;
    for (const segment of segments) batchBytes += segment.length;
    this.unsentBytes += batchBytes;
    const done = (): void => {
      this.unsentBytes -= batchBytes;
      for (const buffer of release) this.pool.give(buffer);
    };
    if (segments.length === 1) {
      this.stream.write(segments[0], done);
      return;
    }
    this.stream.cork();
    const last = segments.length - 1;
    for (let i = 0; i < last; i += 1) this.stream.write(segments[i]);
    this.stream.write(segments[last], done);
    this.stream.uncork();
  }

  /** Sends what is queued; the writer is not used afterwards. */
  close(): void {
    this.flush();
    // The small buffer may still be referenced by a pending write: it is left to GC, not pooled.
  }

  private cutSmallSegment(): void {
    if (this.smallUsed > this.segmentStart) {
      this.segments.push(this.small.subarray(this.segmentStart, this.smallUsed));
      this.segmentStart = this.smallUsed;
    }
  }
}
