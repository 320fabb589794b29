/**
 * The block-device interface every store layer implements (nbdkit's plugin/filter shape).
 *
 * Methods may complete synchronously (return undefined / a value) or asynchronously (return a
 * Promise). The NBD connection replies at once to a synchronous completion, which keeps the hot
 * path free of a promise and a microtask per request; layers that must wait (delay, remote)
 * return promises. `MaybePromise` and `settle` below carry that convention.
 *
 * Offsets and lengths are byte counts in JS numbers, exact up to 2^53. Every layer may assume the
 * caller has checked `offsetBytes + lengthBytes <= sizeBytes` (the NBD layer does; the assertions
 * in `checkRange` catch a caller that does not).
 */
import assert from 'node:assert/strict';
import { MirrorboxError } from '../util/errors.js';

export type MaybePromise<T> = T | Promise<T>;

/** Flags of one extent in base:allocation terms (the NBD values, so no translation is needed). */
export const extentHoleFlag = 1;
export const extentZeroFlag = 2;

export interface Extent {
  offsetBytes: number;
  lengthBytes: number;
  /** extentHoleFlag | extentZeroFlag, or 0 for allocated data. */
  flags: number;
}

/**
 * The bytes of one write, as pieces in order (often one piece). The NBD layer passes the
 * pieces of the receive buffers they arrived in, so a payload is never copied on its way to
 * the store; a store writes them with one vectored call. A store must not keep the pieces
 * after the write completes.
 */
export type WriteData = readonly Uint8Array[];

/** Total bytes of a WriteData. */
export function byteLengthOf(data: WriteData): number {
  let total = 0;
  for (const piece of data) total += piece.length;
  return total;
}

export interface ZeroOptions {
  /** The caller allows the range to become a hole (NBD: NO_HOLE not set). */
  mayTrim: boolean;
  /** Fail with ENOTSUP instead of writing zeros slowly (NBD: FAST_ZERO). */
  fastOnly: boolean;
  /** Durable before completion (NBD: FUA). */
  fua: boolean;
}

/**
 * Where a read's bytes lie in a file, so a caller can send them to a socket straight from the
 * page cache (sendfile) instead of reading them into memory first. Only a layer that returns the
 * file's bytes unchanged offers one (FileStore); filters do not forward it, so a filter that
 * changes reads (errors, delays, encryption...) is never bypassed.
 */
export interface FileSpan {
  /** Open file descriptor holding the bytes. */
  readonly fd: number;
  /** Where the range starts in that file. */
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  /** Clock (ms) to time the send with; pass the start to `finished`. */
  started(): number;
  /** Reports how long the send took: a slow one means the disk answered, not the page cache. */
  finished(startedMs: number): void;
}

export interface BlockDevice {
  /** Size of the device in bytes; fixed for the life of the object. */
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** Whether trim can free space (advertised as SEND_TRIM either way: trim is advisory). */
  readonly canPunchHoles: boolean;
  /** Whether `zero` has a fast path (used to answer FAST_ZERO). */
  readonly canZeroFast: boolean;
  /**
   * Whether FLUSH on this object makes every completed write durable and visible to every user
   * of the same object (true for every local store: they share one file descriptor). Needed to
   * advertise NBD CAN_MULTI_CONN.
   */
  readonly flushCoversAllConnections: boolean;

  /** Fills `buffer` (its whole length) with the bytes at `offsetBytes`. */
  read(buffer: Uint8Array, offsetBytes: number): MaybePromise<void>;
  /**
   * Optional: the file span holding [offsetBytes, offsetBytes + lengthBytes), when the bytes can
   * be sent from the file right now (null: use `read`). The bytes that go out are the file's
   * bytes when the span is sent, not when it was asked for: the caller sends spans in order with
   * its other replies, so only a write concurrent with the read (both in flight) can show
   * through, which NBD leaves undefined anyway. The device must stay open until then.
   */
  fileSpan?(offsetBytes: number, lengthBytes: number): FileSpan | null;
  /** Writes the pieces of `data`, back to back, at `offsetBytes`; durable before completion when `fua`. */
  write(data: WriteData, offsetBytes: number, fua: boolean): MaybePromise<void>;
  /** Makes every completed write durable. */
  flush(): MaybePromise<void>;
  /** Advisory discard: the range may afterwards read as anything (we read zeros back). */
  trim(offsetBytes: number, lengthBytes: number, fua: boolean): MaybePromise<void>;
  /** The range reads as zeros afterwards. */
  zero(offsetBytes: number, lengthBytes: number, options: ZeroOptions): MaybePromise<void>;
  /** Extents covering at least [offsetBytes, offsetBytes + 1), in order, contiguous, inside the range. */
  extents(offsetBytes: number, lengthBytes: number): MaybePromise<Extent[]>;
  /** Prefetch hint (NBD CACHE). */
  cache(offsetBytes: number, lengthBytes: number): MaybePromise<void>;
  /** Flushes and releases resources. Idempotent. */
  close(): MaybePromise<void>;
}

/** Error codes a store may raise; the NBD layer maps them to NBD errors. */
export type StoreErrorCode = 'EIO' | 'ENOSPC' | 'EINVAL' | 'EPERM' | 'ENOTSUP' | 'ESHUTDOWN';

export class StoreError extends MirrorboxError {
  declare readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'StoreError';
  }
}

/** Invariant at the layer boundary: the caller stays inside the device. */
export function checkRange(device: BlockDevice, offsetBytes: number, lengthBytes: number): void {
  // Messages are built only on failure: this runs on every request.
  if (!(Number.isSafeInteger(offsetBytes) && offsetBytes >= 0)) assert.fail(`bad offset ${offsetBytes}`);
  if (!(Number.isSafeInteger(lengthBytes) && lengthBytes >= 0)) assert.fail(`bad length ${lengthBytes}`);
  if (offsetBytes + lengthBytes > device.sizeBytes) assert.fail(`range ${offsetBytes}+${lengthBytes} past end ${device.sizeBytes}`);
}

/** Runs `next` after `value` settles, synchronously when `value` is not a promise. */
export function then<T, U>(value: MaybePromise<T>, next: (v: T) => MaybePromise<U>): MaybePromise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

/** Merges neighbouring extents with equal flags (keeps replies short). */
export function coalesceExtents(extents: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const extent of extents) {
    const last = out[out.length - 1];
    if (last && last.flags === extent.flags && last.offsetBytes + last.lengthBytes === extent.offsetBytes) {
      last.lengthBytes += extent.lengthBytes;
    } else {
      out.push({ ...extent });
    }
  }
  return out;
}
