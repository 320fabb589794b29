/**
 * Reusable buffers for request payloads and read replies.
 *
 * Size classes are powers of two from 4 KiB up, each plus `headroomBytes` so a reply header can
 * sit in front of its data in one contiguous buffer (one socket write, no copy). A buffer goes
 * back to its class when the socket has sent it (or the store has consumed it); each class keeps
 * a bounded free list and the pool as a whole keeps at most `retainedBytesMax`, so memory stays
 * bounded while a steady workload allocates nothing. Fresh memory costs about 1 ms per MiB on
 * these machines: reuse is the point.
 */
import assert from 'node:assert/strict';

/** Room for the largest reply header plus the OFFSET_DATA offset (32 + 8), rounded up. */
export const headroomBytes = 64;
const smallestClassShift = 12; // 4 KiB

export class BufferPool {
  private readonly freeByClass: Buffer[][] = [];
  private retainedBytes = 0;
  /** Counters for tests and metrics. */
  allocations = 0;
  reuses = 0;

  constructor(private readonly retainedBytesMax: number) {}

  /** A buffer of at least `dataBytes + headroomBytes` bytes (contents undefined). */
  take(dataBytes: number): Buffer {
    const klass = classOf(dataBytes);
    const free = this.freeByClass[klass];
    const buffer = free?.pop();
    if (buffer) {
      this.retainedBytes -= buffer.length;
      this.reuses += 1;
      return buffer;
    }
    this.allocations += 1;
    return Buffer.allocUnsafeSlow((1 << (klass + smallestClassShift)) + headroomBytes);
  }

  /** Returns a buffer from `take` for reuse. */
  give(buffer: Buffer): void {
    const dataBytes = buffer.length - headroomBytes;
    const klass = classOf(dataBytes);
    assert.equal((1 << (klass + smallestClassShift)) + headroomBytes, buffer.length, 'buffer did not come from this pool');
    if (this.retainedBytes + buffer.length > this.retainedBytesMax) return;
    (this.freeByClass[klass] ??= []).push(buffer);
    this.retainedBytes += buffer.length;
  }

  /** Allocates `count` buffers of each given data size now, so the first requests find them warm. */
  prewarm(dataBytesList: readonly number[], count: number): void {
    const buffers: Buffer[] = [];
    for (const dataBytes of dataBytesList) for (let i = 0; i < count; i += 1) buffers.push(this.take(dataBytes));
    for (const buffer of buffers) {
      buffer.fill(0);
      this.give(buffer);
    }
  }
}

/** Size class index: 0 for <= 4 KiB, 1 for <= 8 KiB, ... */
function classOf(dataBytes: number): number {
  if (dataBytes <= 1 << smallestClassShift) return 0;
  return 32 - Math.clz32(dataBytes - 1) - smallestClassShift;
}
