/**
 * Delay injection (nbdkit's delay filter): each operation completes after a fixed delay, so
 * tests can rehearse a slow disk or a distant store and check that other clients are not stalled.
 */
import type { BlockDevice, Extent, MaybePromise, WriteData, ZeroOptions } from './block-device.js';
import { StoreError } from './block-device.js';
import { Filter } from './filter.js';

export interface DelayFilterOptions {
  readDelayMs?: number;
  writeDelayMs?: number;
  /** Delay of flush, trim, zero, extents and cache. */
  otherDelayMs?: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function after<T>(delayMs: number, work: () => MaybePromise<T>): Promise<T> {
  await sleep(delayMs);
  return work();
}

export class DelayFilter extends Filter {
  private readonly readDelayMs: number;
  private readonly writeDelayMs: number;
  private readonly otherDelayMs: number;

  constructor(next: BlockDevice, options: DelayFilterOptions) {
    super(next);
    this.readDelayMs = options.readDelayMs ?? 0;
    this.writeDelayMs = options.writeDelayMs ?? 0;
    this.otherDelayMs = options.otherDelayMs ?? 0;
    for (const ms of [this.readDelayMs, this.writeDelayMs, this.otherDelayMs]) {
      if (!(Number.isFinite(ms) && ms >= 0)) throw new StoreError('EINVAL', `delay must be a non-negative number of ms, got ${ms}`);
    }
  }

  override read(buffer: Uint8Array, offsetBytes: number): MaybePromise<void> {
    if (this.readDelayMs === 0) return super.read(buffer, offsetBytes);
    return after(this.readDelayMs, () => super.read(buffer, offsetBytes));
  }
  override write(data: WriteData, offsetBytes: number, fua: boolean): MaybePromise<void> {
    if (this.writeDelayMs === 0) return super.write(data, offsetBytes, fua);
    return after(this.writeDelayMs, () => super.write(data, offsetBytes, fua));
  }
  override flush(): MaybePromise<void> {
    return this.delayOther(() => super.flush());
  }
  override trim(offsetBytes: number, lengthBytes: number, fua: boolean): MaybePromise<void> {
    return this.delayOther(() => super.trim(offsetBytes, lengthBytes, fua));
  }
  override zero(offsetBytes: number, lengthBytes: number, options: ZeroOptions): MaybePromise<void> {
    return this.delayOther(() => super.zero(offsetBytes, lengthBytes, options));
  }
  override extents(offsetBytes: number, lengthBytes: number): MaybePromise<Extent[]> {
    return this.delayOther(() => super.extents(offsetBytes, lengthBytes));
  }
  override cache(offsetBytes: number, lengthBytes: number): MaybePromise<void> {
    return this.delayOther(() => super.cache(offsetBytes, lengthBytes));
  }

  private delayOther<T>(work: () => MaybePromise<T>): MaybePromise<T> {
    return this.otherDelayMs === 0 ? work() : after(this.otherDelayMs, work);
  }
}
