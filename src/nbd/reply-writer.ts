/**
 * Batches a connection's replies into as few socket writes as possible, and sends large read
 * replies straight from the page cache when it can.
 *
 * Small replies (headers, error chunks, block status) are packed back to back into a pooled
 * "small" buffer; a read reply read into memory is its own pooled buffer with the header in
 * front of the data (see BufferPool headroom). `flush()` writes every pending segment between
 * cork() and uncork(), so one receive chunk's worth of replies leaves in one writev. Buffers go
 * back to the pool when the socket has sent the batch that last referenced them (socket writes
 * complete in order, so the last write's callback covers the whole batch).
 *
 * File replies (README "Sending"): a read reply may instead be a header plus a `FileSpan`; the
 * header and the file bytes go to the socket with one native call (send MSG_MORE + sendfile),
 * which never copies the data through our memory. Such a reply must reach the socket after
 * everything queued before it, so:
 *
 * | situation when a file reply's turn comes            | what happens                              |
 * |-----------------------------------------------------|-------------------------------------------|
 * | no batch ever held a file reply                     | batches go to the stream at once (as ever) |
 * | the stream still holds unsent bytes                 | wait: the last write's callback pumps again |
 * | the stream is empty                                 | sendfile; done when every byte went out    |
 * | the socket filled up part way (short send)          | the next `bridgeBytes` are read and written |
 * |                                                     | through the stream; its callback (the      |
 * |                                                     | socket has room again) resumes sendfile    |
 * | the file ended early (short send, bridge reads 0)   | the rest is sent as zeros                  |
 * | sendfile failed (peer gone, or a disk error after   | the connection is closed: the header has   |
 * | the header went out)                                | promised data that cannot follow           |
 * | the stream was destroyed                            | everything queued is dropped, buffers back |
 *
 * Later batches queue behind a waiting file reply in `pending`, so the wire order is the order
 * of the calls.
 */
import assert from 'node:assert/strict';
import { readSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { FileSpan } from '../store/block-device.js';
import type { BufferPool } from './buffer-pool.js';

/** Data bytes of one small-reply buffer (its pool class). */
const smallBufferBytes = 16 * 1024;
/**
 * Bytes of a file reply copied through the stream when the socket is full: the stream's write
 * callback is how we learn that the socket has room again. Small, so little is copied.
 */
export const bridgeBytes = 16 * 1024;

/**
 * Sends `head` then `lengthBytes` of file `fd` from `offsetBytes` to the connection's socket
 * without blocking; returns the bytes sent (head first), fewer when the socket is full.
 */
export type FileSender = (head: Uint8Array, fd: number, offsetBytes: number, lengthBytes: number) => number;

/** Counters of file replies (shared per server, for tests and metrics). */
export interface FileReplyStats {
  /** Read replies sent from a file. */
  fileReplies: number;
  /** Times a file reply found the socket full and waited for room (through a bridge write). */
  fileReplyWaits: number;
}

export interface ReplyWriterOptions {
  /** Null when the connection cannot send from files (TLS, no native helper). */
  sendFile: FileSender | null;
  stats: FileReplyStats;
  /** Runs whenever queued file-reply bytes have left (the connection may resume reading). */
  onSent: () => void;
  /** Runs when a file reply failed after its header went out; the connection is then closed. */
  onFileError: (err: unknown) => void;
}

/** A read reply sent from a file: `head` (in a small buffer), then the span's bytes. */
interface FileReply {
  readonly head: Buffer;
  readonly span: FileSpan;
  /** Bytes of head + data handed to the socket so far. */
  sentBytes: number;
}

/** Buffers written as one corked batch, and the pooled buffers to return once it is sent. */
interface Batch {
  readonly segments: Buffer[];
  readonly release: Buffer[];
  /** Bytes of `segments`, counted in `pendingBatchBytes` while the batch waits. */
  readonly bytes: number;
}

function bytesOf(segments: readonly Buffer[]): number {
  let bytes = 0;
  for (const segment of segments) bytes += segment.length;
  return bytes;
}

function batchOf(segments: Buffer[], release: Buffer[]): Batch {
  return { segments, release, bytes: bytesOf(segments) };
}

const emptyHead = Buffer.alloc(0);

export class ReplyWriter {
  private small: Buffer;
  private smallUsed = 0;
  private segmentStart = 0;
  /** The batch being built: buffers, and file replies that split it. */
  private segments: Array<Buffer | FileReply> = [];
  private hasFileReply = false;
  private release: Buffer[] = [];
  /** Batches and file replies waiting for a file reply ahead of them to be sent. */
  private readonly pending: Array<Batch | FileReply> = [];
  private pumping = false;
  private flushScheduled = false;
  /** Bytes of file replies queued here, and bytes handed to the socket whose write has not completed. */
  private unsentBytes = 0;
  /**
   * Bytes of batches waiting in `pending` behind a file reply. They count in the backlog too: a
   * client that stops reading while a file reply waits must not make replies pile up unbounded.
   */
  private pendingBatchBytes = 0;
  private closeCallback: (() => void) | null = null;
  private readonly sendFile: FileSender | null;

  constructor(
    private readonly stream: Duplex,
    private readonly pool: BufferPool,
    private readonly options: ReplyWriterOptions,
  ) {
    this.small = pool.take(smallBufferBytes);
    this.sendFile = options.sendFile;
  }

  /** Reply bytes queued here or in the socket but not yet sent: the connection stops reading when this grows. */
  get backlogBytes(): number {
    return this.unsentBytes + this.pendingBatchBytes;
  }

  /** True when `pushFile` may be used. */
  get sendsFiles(): boolean {
    return this.sendFile !== null;
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

  /**
   * Queues a read reply sent from a file: reserves `headBytes` for its header (the caller fills
   * them at the returned position before the next flush), followed on the wire by `span`.
   */
  pushFile(headBytes: number, span: FileSpan): { buffer: Buffer; at: number } {
    assert.ok(this.sendFile, 'a file reply on a connection that cannot send files');
    assert.ok(span.lengthBytes > 0 && headBytes > 0, 'an empty file reply');
    this.cutSmallSegment();
    const target = this.reserve(headBytes);
    this.segmentStart = this.smallUsed; // the head belongs to the file reply, not to a small segment
    this.segments.push({ head: target.buffer.subarray(target.at, target.at + headBytes), span, sentBytes: 0 });
    this.hasFileReply = true;
    this.unsentBytes += headBytes + span.lengthBytes;
    this.options.stats.fileReplies += 1;
    return target;
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

  /** Writes everything queued, corked into one batch (file replies in their place). */
  flush(): void {
    this.cutSmallSegment();
    const segments = this.segments;
    if (segments.length === 0) return;
    this.segments = [];
    const release = this.release;
    this.release = [];
    if (!this.hasFileReply && this.pending.length === 0) {
      this.writeBatch(segments as Buffer[], release, bytesOf(segments as Buffer[]));
      return;
    }
    this.hasFileReply = false;
    // Split at the file replies; the buffers to release go with the last batch.
    let buffers: Buffer[] = [];
    for (const segment of segments) {
      if (Buffer.isBuffer(segment)) {
        buffers.push(segment);
        continue;
      }
      if (buffers.length > 0) this.queueBatch(batchOf(buffers, []));
      buffers = [];
      this.pending.push(segment);
    }
    this.queueBatch(batchOf(buffers, release));
    this.pump();
  }

  private queueBatch(batch: Batch): void {
    this.pendingBatchBytes += batch.bytes;
    this.pending.push(batch);
  }

  /** Sends what is queued, then calls `done` (at once if nothing waits); the writer is not used afterwards. */
  close(done: () => void = () => {}): void {
    this.flush();
    // The small buffer may still be referenced by a pending write: it is left to GC, not pooled.
    if (this.pending.length === 0 || this.stream.destroyed) {
      done();
      return;
    }
    this.closeCallback = done;
  }

  /** Writes one batch of `batchBytes` (its segments' total) corked; `release` goes back to the pool once sent. */
  private writeBatch(segments: Buffer[], release: Buffer[], batchBytes: number): void {
    if (this.stream.destroyed) {
      for (const buffer of release) this.pool.give(buffer);
      return;
    }
    if (segments.length === 0) {
      // Only buffers to return: they were referenced by writes already handed to the stream.
      if (release.length === 0) return;
      segments = [emptyHead];
    }
    this.unsentBytes += batchBytes;
    const done = (): void => {
      this.unsentBytes -= batchBytes;
      for (const buffer of release) this.pool.give(buffer);
      if (this.pending.length > 0) this.pump();
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

  /** Sends pending batches and file replies in order, as far as the socket allows. */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    let progressed = false;
    while (this.pending.length > 0) {
      if (this.stream.destroyed) {
        this.dropPending();
        break;
      }
      const item = this.pending[0]!;
      if ('segments' in item) {
        this.pending.shift();
        this.pendingBatchBytes -= item.bytes;
        this.writeBatch(item.segments, item.release, item.bytes);
        continue;
      }
      // A file reply goes out only once everything before it has reached the socket.
      if (this.stream.writableLength > 0) break;
      progressed = true;
      if (!this.sendFileReply(item)) break;
      this.pending.shift();
    }
    this.pumping = false;
    if (this.pending.length === 0 && this.closeCallback) {
      const done = this.closeCallback;
      this.closeCallback = null;
      done();
    }
    if (progressed) this.options.onSent();
  }

  /** True when the reply has been handed over completely (the last part may still be in the stream). */
  private sendFileReply(reply: FileReply): boolean {
    const { head, span } = reply;
    const totalBytes = head.length + span.lengthBytes;
    const sendFile = this.sendFile!;
    const headRest = reply.sentBytes < head.length ? head.subarray(reply.sentBytes) : emptyHead;
    const dataSent = reply.sentBytes - (head.length - headRest.length);
    const startedMs = span.started();
    let sent: number;
    try {
      sent = sendFile(headRest, span.fd, span.offsetBytes + dataSent, span.lengthBytes - dataSent);
    } catch (err) {
      span.finished(startedMs);
      this.failFileReply(err);
      return false;
    }
    span.finished(startedMs);
    reply.sentBytes += sent;
    this.unsentBytes -= sent;
    if (reply.sentBytes === totalBytes) return true;
    this.bridge(reply);
    return reply.sentBytes === totalBytes;
  }

  /**
   * The socket is full: write the next few bytes of `reply` through the stream, whose callback
   * tells us when there is room again (and pumps). The rest of the head is written as it is;
   * file bytes are read into a pooled buffer (zeros past the end of the file).
   */
  private bridge(reply: FileReply): void {
    const { head, span } = reply;
    let piece: Buffer;
    let pooled: Buffer | null = null;
    if (reply.sentBytes < head.length) {
      piece = head.subarray(reply.sentBytes);
    } else {
      const dataSent = reply.sentBytes - head.length;
      const pieceBytes = Math.min(bridgeBytes, span.lengthBytes - dataSent);
      pooled = this.pool.take(bridgeBytes);
      piece = pooled.subarray(0, pieceBytes);
      let filled = 0;
      try {
        while (filled < pieceBytes) {
          const n = readSync(span.fd, piece, filled, pieceBytes - filled, span.offsetBytes + dataSent + filled);
          if (n === 0) break;
          filled += n;
        }
      } catch (err) {
        this.pool.give(pooled);
        this.failFileReply(err);
        return;
      }
      piece.fill(0, filled);
    }
    reply.sentBytes += piece.length;
    this.options.stats.fileReplyWaits += 1;
    const pieceBytes = piece.length;
    this.stream.write(piece, () => {
      this.unsentBytes -= pieceBytes;
      if (pooled) this.pool.give(pooled);
      this.pump();
    });
  }

  private failFileReply(err: unknown): void {
    this.dropPending();
    this.options.onFileError(err);
    this.stream.destroy();
  }

  private dropPending(): void {
    this.pendingBatchBytes = 0;
    for (const item of this.pending.splice(0)) {
      if ('segments' in item) for (const buffer of item.release) this.pool.give(buffer);
    }
  }

  private cutSmallSegment(): void {
    if (this.smallUsed > this.segmentStart) {
      this.segments.push(this.small.subarray(this.segmentStart, this.smallUsed));
      this.segmentStart = this.smallUsed;
    }
  }
}
