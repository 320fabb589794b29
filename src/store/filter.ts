/**
 * Base of every filter layer: forwards each call to `next` unchanged. A filter overrides only
 * the calls it changes, as nbdkit filters do.
 */
import type { BlockDevice, Extent, MaybePromise, WriteData, ZeroOptions } from './block-device.js';

export abstract class Filter implements BlockDevice {
  constructor(protected readonly next: BlockDevice) {}

  get sizeBytes(): number {
    return this.next.sizeBytes;
  }
  get readOnly(): boolean {
    return this.next.readOnly;
  }
  get canPunchHoles(): boolean {
    return this.next.canPunchHoles;
  }
  get canZeroFast(): boolean {
    return this.next.canZeroFast;
  }
  get flushCoversAllConnections(): boolean {
    return this.next.flushCoversAllConnections;
  }
  read(buffer: Uint8Array, offsetBytes: number): MaybePromise<void> {
    return this.next.read(buffer, offsetBytes);
  }
  write(data: WriteData, offsetBytes: number, fua: boolean): MaybePromise<void> {
    return this.next.write(data, offsetBytes, fua);
  }
  flush(): MaybePromise<void> {
    return this.next.flush();
  }
  trim(offsetBytes: number, lengthBytes: number, fua: boolean): MaybePromise<void> {
    return this.next.trim(offsetBytes, lengthBytes, fua);
  }
  zero(offsetBytes: number, lengthBytes: number, options: ZeroOptions): MaybePromise<void> {
    return this.next.zero(offsetBytes, lengthBytes, options);
  }
  extents(offsetBytes: number, lengthBytes: number): MaybePromise<Extent[]> {
    return this.next.extents(offsetBytes, lengthBytes);
  }
  cache(offsetBytes: number, lengthBytes: number): MaybePromise<void> {
    return this.next.cache(offsetBytes, lengthBytes);
  }
  close(): MaybePromise<void> {
    return this.next.close();
  }
}
