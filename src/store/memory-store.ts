/**
 * Memory store: a sparse RAM disk for tests and scratch exports. Storage is a map of fixed-size
 * chunks; a missing chunk is a hole that reads as zeros, and trim/zero drop whole chunks.
 * Nothing survives the process (flush is a no-op), so it never advertises durability it lacks:
 * the NBD layer still advertises FLUSH and FUA (they succeed trivially) as nbdkit's memory plugin does.
 */
import {
  type BlockDevice,
  type Extent,
  type WriteData,
  type ZeroOptions,
  StoreError,
  byteLengthOf,
  checkRange,
  coalesceExtents,
  extentHoleFlag,
  extentZeroFlag,
} from './block-device.js';

/** Allocation unit of the memory store. */
export const memoryChunkBytes = 64 * 1024;
/** Extents returned per call at most (the client asks again for the rest). */
const extentsPerCallMax = 4096;

export class MemoryStore implements BlockDevice {
  readonly readOnly: boolean;
  readonly canPunchHoles = true;
  readonly canZeroFast = true;
  readonly flushCoversAllConnections = true;
  private readonly chunks = new Map<number, Buffer>();

  constructor(
    readonly sizeBytes: number,
    options: { readOnly?: boolean } = {},
  ) {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new StoreError('EINVAL', `bad memory store size ${sizeBytes}`);
    this.readOnly = options.readOnly ?? false;
  }

  /** Bytes of RAM holding data (for tests of sparseness). */
  get allocatedBytes(): number {
    return this.chunks.size * memoryChunkBytes;
  }

  read(buffer: Uint8Array, offsetBytes: number): void {
    checkRange(this, offsetBytes, buffer.length);
    this.forEachPiece(offsetBytes, buffer.length, (index, within, length, done) => {
      const chunk = this.chunks.get(index);
      if (chunk) buffer.set(chunk.subarray(within, within + length), done);
      else buffer.fill(0, done, done + length);
    });
  }

  write(data: WriteData, offsetBytes: number, _fua?: boolean): void {
    checkRange(this, offsetBytes, byteLengthOf(data));
    this.assertWritable();
    let pieceOffset = offsetBytes;
    for (const piece of data) {
      this.forEachPiece(pieceOffset, piece.length, (index, within, length, done) => {
        let chunk = this.chunks.get(index);
        if (!chunk) {
          chunk = Buffer.alloc(memoryChunkBytes);
          this.chunks.set(index, chunk);
        }
        chunk.set(piece.subarray(done, done + length), within);
      });
      pieceOffset += piece.length;
    }
  }

  flush(): void {}

  trim(offsetBytes: number, lengthBytes: number, _fua?: boolean): void {
    this.zero(offsetBytes, lengthBytes, { mayTrim: true, fastOnly: false, fua: false });
  }

  zero(offsetBytes: number, lengthBytes: number, _options: ZeroOptions): void {
    checkRange(this, offsetBytes, lengthBytes);
    this.assertWritable();
    this.forEachPiece(offsetBytes, lengthBytes, (index, within, length) => {
      const chunk = this.chunks.get(index);
      if (!chunk) return;
      if (length === memoryChunkBytes) this.chunks.delete(index);
      else chunk.fill(0, within, within + length);
    });
  }

  extents(offsetBytes: number, lengthBytes: number): Extent[] {
    checkRange(this, offsetBytes, lengthBytes);
    const endBytes = offsetBytes + lengthBytes;
    const firstIndex = Math.floor(offsetBytes / memoryChunkBytes);
    const lastIndex = Math.floor((endBytes - 1) / memoryChunkBytes);
    const allocated = [...this.chunks.keys()].filter((i) => i >= firstIndex && i <= lastIndex).sort((a, b) => a - b);
    const extents: Extent[] = [];
    let position = offsetBytes;
    const push = (until: number, flags: number): void => {
      if (until > position) extents.push({ offsetBytes: position, lengthBytes: until - position, flags });
      position = until;
    };
    for (const index of allocated) {
      if (extents.length >= extentsPerCallMax) break;
      push(Math.max(position, index * memoryChunkBytes), extentHoleFlag | extentZeroFlag);
      push(Math.min(endBytes, (index + 1) * memoryChunkBytes), 0);
    }
    if (extents.length < extentsPerCallMax) push(endBytes, extentHoleFlag | extentZeroFlag);
    return coalesceExtents(extents);
  }

  cache(offsetBytes: number, lengthBytes: number): void {
    checkRange(this, offsetBytes, lengthBytes);
  }

  close(): void {
    this.chunks.clear();
  }

  private assertWritable(): void {
    if (this.readOnly) throw new StoreError('EPERM', 'store is read-only');
  }

  /** Calls `visit(chunkIndex, offsetWithinChunk, length, doneSoFar)` for each chunk piece of a range. */
  private forEachPiece(
    offsetBytes: number,
    lengthBytes: number,
    visit: (index: number, within: number, length: number, done: number) => void,
  ): void {
    let done = 0;
    while (done < lengthBytes) {
      const position = offsetBytes + done;
      const index = Math.floor(position / memoryChunkBytes);
      const within = position - index * memoryChunkBytes;
      const length = Math.min(memoryChunkBytes - within, lengthBytes - done);
      visit(index, within, length, done);
      done += length;
    }
  }
}
