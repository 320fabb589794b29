/**
 * Where a file store's reads and writes run: on the event loop (synchronous pread/pwrite) or on
 * libuv's threadpool.
 *
 * Measured (README "Where file I/O runs"): when the page cache answers, a synchronous call is
 * the fastest at every size — one syscall, no thread hand-off, no inode-lock contention between
 * pool threads — and with direct socket reads it beat the threadpool on 1 MiB reads and writes
 * too. When the disk answers instead (a cache miss, dirty-page throttling), a synchronous call
 * stalls every connection for that long. So in 'auto' mode:
 *
 * | situation                                            | where the call runs            |
 * |------------------------------------------------------|--------------------------------|
 * | write <= syncWriteBytesMax, no recent stall          | event loop                     |
 * | read <= syncReadBytesMax, no recent stall            | event loop                     |
 * | longer than that                                     | threadpool                     |
 * | a synchronous call took longer than stallMs          | threadpool for the next holdMs |
 * | holdMs over                                          | event loop again (a new probe) |
 * | a send from the file (sendfile), no recent stall     | event loop, any size; it stalls |
 * |                                                      | past stallMs per syncReadBytesMax |
 *
 * Large reads go to the threadpool sooner than writes: a large read is two copies (page cache
 * to buffer, buffer to socket) that then run on two cores; a large write's receive copy already
 * happened, and pool threads writing one file contend for its inode lock.
 *
 * 'sync' and 'async' force one side (for measurement, or a disk known to be slow).
 */
export type IoMode = 'auto' | 'sync' | 'async';

export interface IoPlacementOptions {
  /** Largest write that may run on the event loop (a bigger copy would hold the loop too long). */
  syncWriteBytesMax: number;
  /** Largest read that may run on the event loop. */
  syncReadBytesMax: number;
  /** A synchronous call slower than this means the disk, not the page cache, answered. */
  stallMs: number;
  /** How long calls stay on the threadpool after a stall. */
  holdMs: number;
  /** Clock in ms (injectable for tests). */
  now: () => number;
}

export const defaultIoPlacementOptions: Readonly<IoPlacementOptions> = Object.freeze({
  syncWriteBytesMax: 4 * 1024 * 1024,
  syncReadBytesMax: 256 * 1024,
  stallMs: 2,
  holdMs: 1000,
  now: () => performance.now(),
});

export class IoPlacement {
  private readonly options: IoPlacementOptions;
  private asyncUntilMs = 0;
  /** Synchronous calls that stalled (each moved I/O to the threadpool for holdMs). */
  stalls = 0;

  constructor(
    readonly mode: IoMode,
    options: Partial<IoPlacementOptions> = {},
  ) {
    this.options = { ...defaultIoPlacementOptions, ...options };
  }

  /** True when a read of `lengthBytes` should run synchronously now. */
  readsSync(lengthBytes: number): boolean {
    return this.runsSync(lengthBytes, this.options.syncReadBytesMax);
  }

  /**
   * True when a read may be sent straight from the file on the event loop now (sendfile: no copy
   * through our memory, so no size limit; only the stall rule and the mode apply).
   */
  sendsSync(): boolean {
    if (this.mode !== 'auto') return this.mode === 'sync';
    return this.options.now() >= this.asyncUntilMs;
  }

  /**
   * Records how long sending `lengthBytes` from the file took. A send also pushes the bytes
   * through the socket (on loopback, through the receiver's TCP stack too), so it is allowed
   * `stallMs` per `syncReadBytesMax` before it counts as a stall.
   */
  finishedSend(startedMs: number, lengthBytes: number): void {
    const allowedMs = this.options.stallMs * Math.max(1, lengthBytes / this.options.syncReadBytesMax);
    this.finishedWithin(startedMs, allowedMs);
  }

  /** True when a write of `lengthBytes` should run synchronously now. */
  writesSync(lengthBytes: number): boolean {
    return this.runsSync(lengthBytes, this.options.syncWriteBytesMax);
  }

  private runsSync(lengthBytes: number, bytesMax: number): boolean {
    if (this.mode !== 'auto') return this.mode === 'sync';
    return lengthBytes <= bytesMax && this.options.now() >= this.asyncUntilMs;
  }

  /** The clock, to time a synchronous call (pass the result to `finished`). */
  started(): number {
    return this.options.now();
  }

  /** Records how long a synchronous call took; a stall moves calls to the threadpool for a while. */
  finished(startedMs: number): void {
    this.finishedWithin(startedMs, this.options.stallMs);
  }

  private finishedWithin(startedMs: number, allowedMs: number): void {
    const nowMs = this.options.now();
    if (nowMs - startedMs > allowedMs) {
      this.stalls += 1;
      this.asyncUntilMs = nowMs + this.options.holdMs;
    }
  }
}
