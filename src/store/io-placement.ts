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
 * | length <= syncBytesMax, no recent stall              | event loop                     |
 * | length > syncBytesMax                                | threadpool                     |
 * | a synchronous call took longer than stallMs          | threadpool for the next holdMs |
 * | holdMs over                                          | event loop again (a new probe) |
 *
 * 'sync' and 'async' force one side (for measurement, or a disk known to be slow).
 */
export type IoMode = 'auto' | 'sync' | 'async';

export interface IoPlacementOptions {
  /** Largest call that may run on the event loop (a bigger copy would hold the loop too long). */
  syncBytesMax: number;
  /** A synchronous call slower than this means the disk, not the page cache, answered. */
  stallMs: number;
  /** How long calls stay on the threadpool after a stall. */
  holdMs: number;
  /** Clock in ms (injectable for tests). */
  now: () => number;
}

export const defaultIoPlacementOptions: Readonly<IoPlacementOptions> = Object.freeze({
  syncBytesMax: 4 * 1024 * 1024,
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

  /** True when a call of `lengthBytes` should run synchronously now. */
  runsSync(lengthBytes: number): boolean {
    if (this.mode !== 'auto') return this.mode === 'sync';
    return lengthBytes <= this.options.syncBytesMax && this.options.now() >= this.asyncUntilMs;
  }

  /** The clock, to time a synchronous call (pass the result to `finished`). */
  started(): number {
    return this.options.now();
  }

  /** Records how long a synchronous call took; a stall moves calls to the threadpool for a while. */
  finished(startedMs: number): void {
    const nowMs = this.options.now();
    if (nowMs - startedMs > this.options.stallMs) {
      this.stalls += 1;
      this.asyncUntilMs = nowMs + this.options.holdMs;
    }
  }
}
