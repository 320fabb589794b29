/**
 * Exact-length reads from a socket during the handshake (where clarity beats speed): `read(n)`
 * resolves with exactly n bytes, `skip(n)` discards n bytes without holding them. `detach()`
 * hands the bytes already received but not consumed to the next phase.
 */
import type { Duplex } from 'node:stream';
import { MirrorboxError } from '../util/errors.js';

export class ConnectionClosedError extends MirrorboxError {
  constructor() {
    super('CONNECTION_CLOSED', 'the peer closed the connection');
  }
}

export class StreamReader {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private wantBytes = 0;
  private skipping = false;
  private waiter: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private ended = false;
  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    this.settle();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.settle();
  };

  constructor(private readonly stream: Duplex) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
  }

  read(lengthBytes: number): Promise<Buffer> {
    return this.wait(lengthBytes, false);
  }

  async skip(lengthBytes: number): Promise<void> {
    let left = lengthBytes;
    while (left > 0) {
      const step = Math.min(left, 64 * 1024);
      await this.wait(step, true);
      left -= step;
    }
  }

  /** Stops listening and returns the unconsumed bytes. */
  detach(): Buffer {
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    const rest = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    this.bufferedBytes = 0;
    return rest;
  }

  private wait(lengthBytes: number, skipping: boolean): Promise<Buffer> {
    if (this.waiter) throw new Error('StreamReader: one read at a time');
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.wantBytes = lengthBytes;
      this.skipping = skipping;
      this.settle();
    });
  }

  private settle(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    if (this.bufferedBytes >= this.wantBytes) {
      this.waiter = null;
      waiter.resolve(this.take(this.wantBytes, this.skipping));
    } else if (this.ended) {
      this.waiter = null;
      waiter.reject(new ConnectionClosedError());
    }
  }

  private take(lengthBytes: number, discard: boolean): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const rest = joined.subarray(lengthBytes);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.bufferedBytes = rest.length;
    return discard ? joined.subarray(0, 0) : joined.subarray(0, lengthBytes);
  }
}
