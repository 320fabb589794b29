/**
 * Group commit for fdatasync. Every caller gets a sync that STARTED after its call (so it covers
 * every write the caller completed before calling); callers that arrive while a sync runs share
 * the next one. At most one fdatasync runs at a time per file.
 *
 * A failed fdatasync is sticky: Linux may drop the dirty pages and clear the error, so a later
 * success would lie. After the first failure every sync (and the store's writes) fail with EIO.
 */
import { fdatasync } from 'node:fs';
import { StoreError } from './block-device.js';

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class SyncBatcher {
  private running = false;
  private pending: Waiter[] = [];
  private failure: StoreError | null = null;
  /** Count of fdatasync calls made (for tests and metrics). */
  syncCount = 0;

  constructor(private readonly fd: number) {}

  get failed(): StoreError | null {
    return this.failure;
  }

  sync(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      if (!this.running) this.startNext();
    });
  }

  private startNext(): void {
    const batch = this.pending;
    this.pending = [];
    this.running = true;
    this.syncCount += 1;
    fdatasync(this.fd, (err) => {
      this.running = false;
      if (err && !this.failure) {
        this.failure = new StoreError('EIO', `fdatasync failed: ${err.message}; the store now fails every write and flush`, { cause: err });
      }
      for (const waiter of batch) {
        if (this.failure) waiter.reject(this.failure);
        else waiter.resolve();
      }
      if (this.pending.length > 0) {
        if (this.failure) {
          const rest = this.pending;
          this.pending = [];
          for (const waiter of rest) waiter.reject(this.failure);
        } else {
          this.startNext();
        }
      }
    });
  }
}
