/**
 * Error injection (nbdkit's error filter): fails chosen operations with a chosen error, at a
 * rate (probability per call, from a seeded generator so a failing run can be replayed) and/or
 * only while a trigger file exists. Ships in the product so users can rehearse failures:
 * `mirrorbox serve --error-rate 0.01 --error-ops read,write --error-trigger /tmp/fail`.
 */
import { existsSync } from 'node:fs';
import { type BlockDevice, type Extent, type MaybePromise, type StoreErrorCode, type WriteData, type ZeroOptions, StoreError } from './block-device.js';
import { Filter } from './filter.js';

export type FaultOp = 'read' | 'write' | 'flush' | 'trim' | 'zero' | 'extents' | 'cache';
export const faultOps: readonly FaultOp[] = ['read', 'write', 'flush', 'trim', 'zero', 'extents', 'cache'];

export interface ErrorFilterOptions {
  /** Probability in [0, 1] that an eligible call fails; 1 with a trigger file = fail while it exists. */
  rate: number;
  /** Only fail while this file exists (checked per call). */
  triggerPath?: string;
  /** Operations that may fail (default: all). */
  ops?: readonly FaultOp[];
  /** The error to raise (default EIO). */
  code?: StoreErrorCode;
  /** Seed of the generator deciding each call (default 1). */
  seed?: number;
}

export class ErrorFilter extends Filter {
  private readonly ops: ReadonlySet<FaultOp>;
  private readonly code: StoreErrorCode;
  private state: number;
  /** Count of errors injected so far. */
  injected = 0;

  constructor(
    next: BlockDevice,
    private readonly options: ErrorFilterOptions,
  ) {
    super(next);
    if (!(options.rate >= 0 && options.rate <= 1)) throw new StoreError('EINVAL', `error rate must be within 0..1, got ${options.rate}`);
    this.ops = new Set(options.ops ?? faultOps);
    this.code = options.code ?? 'EIO';
    this.state = (options.seed ?? 1) >>> 0 || 1;
  }

  /** xorshift32: small, fast, reproducible from the seed. */
  private nextUnit(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 0x1_0000_0000;
  }

  private maybeFail(op: FaultOp): void {
    if (!this.ops.has(op)) return;
    if (this.options.triggerPath !== undefined && !existsSync(this.options.triggerPath)) return;
    if (this.options.rate < 1 && this.nextUnit() >= this.options.rate) return;
    this.injected += 1;
    throw new StoreError(this.code, `injected ${this.code} on ${op}`);
  }

  override read(buffer: Uint8Array, offsetBytes: number): MaybePromise<void> {
    this.maybeFail('read');
    return super.read(buffer, offsetBytes);
  }
  override write(data: WriteData, offsetBytes: number, fua: boolean): MaybePromise<void> {
    this.maybeFail('write');
    return super.write(data, offsetBytes, fua);
  }
  override flush(): MaybePromise<void> {
    this.maybeFail('flush');
    return super.flush();
  }
  override trim(offsetBytes: number, lengthBytes: number, fua: boolean): MaybePromise<void> {
    this.maybeFail('trim');
    return super.trim(offsetBytes, lengthBytes, fua);
  }
  override zero(offsetBytes: number, lengthBytes: number, options: ZeroOptions): MaybePromise<void> {
    this.maybeFail('zero');
    return super.zero(offsetBytes, lengthBytes, options);
  }
  override extents(offsetBytes: number, lengthBytes: number): MaybePromise<Extent[]> {
    this.maybeFail('extents');
    return super.extents(offsetBytes, lengthBytes);
  }
  override cache(offsetBytes: number, lengthBytes: number): MaybePromise<void> {
    this.maybeFail('cache');
    return super.cache(offsetBytes, lengthBytes);
  }
}
