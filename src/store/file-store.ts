/**
 * Sparse-file store: the bottom layer for a local drive image.
 *
 * Where each read and write runs (event loop or threadpool) is decided by IoPlacement
 * (io-placement.ts): synchronously while the page cache answers fast, on the threadpool for a
 * while after a synchronous call stalls. fdatasync always runs on the threadpool through a
 * group-commit batcher.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import {
  type BlockDevice,
  type Extent,
  type FileSpan,
  type MaybePromise,
  type WriteData,
  type ZeroOptions,
  StoreError,
  byteLengthOf,
  checkRange,
  extentHoleFlag,
  extentZeroFlag,
} from './block-device.js';
import { sparseNative } from './sparse-native.js';
import { SyncBatcher } from './sync-batcher.js';
import { IoPlacement, type IoMode } from './io-placement.js';
import { hasCode } from '../util/errors.js';
import { fsyncPath } from '../util/fsync.js';

export type { IoMode } from './io-placement.js';

export interface FileStoreOptions {
  path: string;
  /** Size for a new file; for an existing smaller file, it is grown (sparse) to this size. */
  sizeBytes?: number;
  readOnly?: boolean;
  ioMode?: IoMode;
}

/** Size of the shared zero buffer used when zeros must be written out. */
const zeroChunkBytes = 1024 * 1024;
/** Upper bound on extents returned per call (replies stay small; the client asks again). */
export const extentsPerCallMax = 4096;
/** Bytes read per step by `cache` (prefetch). */
const cacheChunkBytes = 1024 * 1024;

let zeroChunk: Buffer | null = null;
function sharedZeroChunk(): Buffer {
  zeroChunk ??= Buffer.alloc(zeroChunkBytes);
  return zeroChunk;
}

export class FileStore implements BlockDevice {
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  readonly canZeroFast: boolean;
  readonly flushCoversAllConnections = true;
  readonly path: string;
  private punchHoles: boolean;
  private readonly fd: number;
  private readonly batcher: SyncBatcher;
  /** Where reads and writes run; its `stalls` count is exposed for tests and metrics. */
  readonly placement: IoPlacement;
  private closed = false;
  /** Whether the kernel tells page-cache residency (cachestat); cleared at the first "cannot tell". */
  private cacheKnown = true;

  /** Opens (or creates, sparse) the file. Throws StoreError with a one-line reason. */
  static open(options: FileStoreOptions): FileStore {
    const readOnly = options.readOnly ?? false;
    const created = !readOnly && !fs.existsSync(options.path);
    let fd: number;
    try {
      fd = fs.openSync(options.path, readOnly ? 'r' : fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    } catch (err) {
      throw new StoreError('EPERM', `cannot open store ${options.path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new StoreError('EINVAL', `store ${options.path} is not a regular file`);
      let sizeBytes = stat.size;
      const wanted = options.sizeBytes;
      if (wanted !== undefined && wanted !== sizeBytes) {
        if (stat.size > wanted) {
          throw new StoreError('EINVAL', `store ${options.path} holds ${stat.size} bytes, more than --size ${wanted}; refusing to shrink it`);
        }
        if (readOnly) throw new StoreError('EPERM', `store ${options.path} is smaller than --size and read-only`);
        fs.ftruncateSync(fd, wanted);
        sizeBytes = wanted;
      }
      if (sizeBytes === 0) throw new StoreError('EINVAL', `store ${options.path} is empty; give --size to create it`);
      // A new file's directory entry must survive a crash too: without this, power loss could
      // lose the whole image, and with it data a FLUSH acknowledged (fdatasync covers the file,
      // not the folder that names it).
      if (created) syncFolder(dirname(options.path));
      return new FileStore(options.path, fd, sizeBytes, readOnly, options.ioMode ?? 'auto');
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  private constructor(path: string, fd: number, sizeBytes: number, readOnly: boolean, ioMode: IoMode) {
    this.path = path;
    this.fd = fd;
    this.sizeBytes = sizeBytes;
    this.readOnly = readOnly;
    this.placement = new IoPlacement(ioMode);
    this.batcher = new SyncBatcher(fd);
    this.punchHoles = sparseNative !== null;
    this.canZeroFast = sparseNative !== null;
  }

  get canPunchHoles(): boolean {
    return this.punchHoles;
  }

  /** Number of fdatasync calls issued so far (group commit makes it lower than flushes). */
  get syncCount(): number {
    return this.batcher.syncCount;
  }

  read(buffer: Uint8Array, offsetBytes: number): MaybePromise<void> {
    checkRange(this, offsetBytes, buffer.length);
    if (!this.placement.readsSync(buffer.length)) return this.readAsync(buffer, offsetBytes);
    const startedMs = this.placement.started();
    let done = 0;
    try {
      while (done < buffer.length) {
        const n = fs.readSync(this.fd, buffer, done, buffer.length - done, offsetBytes + done);
        if (n === 0) {
          buffer.fill(0, done);
          break;
        }
        done += n;
      }
    } catch (err) {
      throw toStoreError(err, 'read');
    }
    this.placement.finished(startedMs);
  }

  private async readAsync(buffer: Uint8Array, offsetBytes: number): Promise<void> {
    let done = 0;
    while (done < buffer.length) {
      const n = await readAt(this.fd, buffer, done, buffer.length - done, offsetBytes + done);
      if (n === 0) {
        buffer.fill(0, done);
        return;
      }
      done += n;
    }
  }

  /**
   * The file itself holds the bytes. A span is offered only when sending it cannot wait for the
   * disk: every page of the range is in the page cache (cachestat). A kernel that cannot tell
   * (before 6.5) gets spans while sends have been fast, with the placement's stall rule.
   * A range not in the cache is left to `read` (the threadpool, for large reads).
   */
  fileSpan(offsetBytes: number, lengthBytes: number): FileSpan | null {
    checkRange(this, offsetBytes, lengthBytes);
    if (this.closed || !sparseNative || this.placement.mode === 'async') return null;
    if (this.cacheKnown) {
      const cached = sparseNative.isCached(this.fd, offsetBytes, lengthBytes);
      if (cached !== null) return cached ? new StoreFileSpan(this.fd, offsetBytes, lengthBytes, null) : null;
      this.cacheKnown = false;
    }
    if (!this.placement.sendsSync()) return null;
    return new StoreFileSpan(this.fd, offsetBytes, lengthBytes, this.placement);
  }

  write(data: WriteData, offsetBytes: number, fua: boolean): MaybePromise<void> {
    const lengthBytes = byteLengthOf(data);
    checkRange(this, offsetBytes, lengthBytes);
    this.assertWritable();
    if (!this.placement.writesSync(lengthBytes)) return this.writeAsync(data, offsetBytes, lengthBytes, fua);
    const startedMs = this.placement.started();
    this.writeAllSync(data, offsetBytes, lengthBytes);
    this.placement.finished(startedMs);
    return fua ? this.batcher.sync() : undefined;
  }

  private writeAllSync(data: WriteData, offsetBytes: number, lengthBytes: number): void {
    try {
      let written = data.length === 1 ? fs.writeSync(this.fd, data[0]!, 0, lengthBytes, offsetBytes) : fs.writevSync(this.fd, data as Uint8Array[], offsetBytes);
      while (written < lengthBytes) {
        const rest = remainderOf(data, written);
        written += fs.writevSync(this.fd, rest, offsetBytes + written);
      }
    } catch (err) {
      throw toStoreError(err, 'write');
    }
  }

  private async writeAsync(data: WriteData, offsetBytes: number, lengthBytes: number, fua: boolean): Promise<void> {
    let written = 0;
    try {
      while (written < lengthBytes) {
        written += await writevAt(this.fd, written === 0 ? (data as Uint8Array[]) : remainderOf(data, written), offsetBytes + written);
      }
    } catch (err) {
      throw toStoreError(err, 'write');
    }
    if (fua) await this.batcher.sync();
  }

  flush(): MaybePromise<void> {
    if (this.readOnly) return undefined;
    return this.batcher.sync();
  }

  trim(offsetBytes: number, lengthBytes: number, fua: boolean): MaybePromise<void> {
    checkRange(this, offsetBytes, lengthBytes);
    this.assertWritable();
    // Trim is advisory: without hole punching it does nothing, and the range keeps its data.
    if (!this.punchHoles || lengthBytes === 0) return undefined;
    if (!this.tryPunch(offsetBytes, lengthBytes)) return undefined;
    return fua ? this.batcher.sync() : undefined;
  }

  zero(offsetBytes: number, lengthBytes: number, options: ZeroOptions): MaybePromise<void> {
    checkRange(this, offsetBytes, lengthBytes);
    this.assertWritable();
    if (lengthBytes === 0) return undefined;
    let done = options.mayTrim && this.punchHoles && this.tryPunch(offsetBytes, lengthBytes);
    if (!done && sparseNative) {
      try {
        sparseNative.zeroRange(this.fd, offsetBytes, lengthBytes);
        done = true;
      } catch (err) {
        if (!hasCode(err, 'EOPNOTSUPP') && !hasCode(err, 'ENOSYS')) throw toStoreError(err, 'zero');
      }
    }
    if (!done) {
      if (options.fastOnly) throw new StoreError('ENOTSUP', 'fast zero is not supported by this file system');
      this.writeZeros(offsetBytes, lengthBytes);
    }
    return options.fua ? this.batcher.sync() : undefined;
  }

  /** Punches a hole; returns false (and stops trying) when the file system cannot. */
  private tryPunch(offsetBytes: number, lengthBytes: number): boolean {
    assert.ok(sparseNative);
    try {
      sparseNative.punchHole(this.fd, offsetBytes, lengthBytes);
      return true;
    } catch (err) {
      if (hasCode(err, 'EOPNOTSUPP') || hasCode(err, 'ENOSYS')) {
        this.punchHoles = false;
        return false;
      }
      throw toStoreError(err, 'punch hole');
    }
  }

  private writeZeros(offsetBytes: number, lengthBytes: number): void {
    const zeros = sharedZeroChunk();
    let done = 0;
    while (done < lengthBytes) {
      const step = Math.min(zeros.length, lengthBytes - done);
      this.writeAllSync([zeros.subarray(0, step)], offsetBytes + done, step);
      done += step;
    }
  }

  extents(offsetBytes: number, lengthBytes: number): MaybePromise<Extent[]> {
    checkRange(this, offsetBytes, lengthBytes);
    const endBytes = offsetBytes + lengthBytes;
    if (!sparseNative) return [{ offsetBytes, lengthBytes, flags: 0 }];
    const extents: Extent[] = [];
    let position = offsetBytes;
    try {
      while (position < endBytes && extents.length < extentsPerCallMax) {
        const dataAt = sparseNative.seekData(this.fd, position);
        if (dataAt === -1 || dataAt >= endBytes) {
          extents.push({ offsetBytes: position, lengthBytes: endBytes - position, flags: extentHoleFlag | extentZeroFlag });
          break;
        }
        if (dataAt > position) {
          extents.push({ offsetBytes: position, lengthBytes: dataAt - position, flags: extentHoleFlag | extentZeroFlag });
          position = dataAt;
          continue;
        }
        const holeAt = Math.min(sparseNative.seekHole(this.fd, position), endBytes);
        assert.ok(holeAt > position, 'SEEK_HOLE went backwards');
        extents.push({ offsetBytes: position, lengthBytes: holeAt - position, flags: 0 });
        position = holeAt;
      }
    } catch (err) {
      if (hasCode(err, 'EINVAL') || hasCode(err, 'EOPNOTSUPP')) return [{ offsetBytes, lengthBytes, flags: 0 }];
      throw toStoreError(err, 'extents');
    }
    return extents;
  }

  async cache(offsetBytes: number, lengthBytes: number): Promise<void> {
    checkRange(this, offsetBytes, lengthBytes);
    const scratch = Buffer.allocUnsafe(Math.min(cacheChunkBytes, Math.max(lengthBytes, 1)));
    let done = 0;
    while (done < lengthBytes) {
      const step = Math.min(scratch.length, lengthBytes - done);
      const n = await readAt(this.fd, scratch, 0, step, offsetBytes + done);
      if (n === 0) break;
      done += n;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (!this.readOnly && !this.batcher.failed) await this.batcher.sync();
    } finally {
      fs.closeSync(this.fd);
    }
  }

  private assertWritable(): void {
    if (this.readOnly) throw new StoreError('EPERM', 'store is read-only');
    const failure = this.batcher.failed;
    if (failure) throw failure;
  }
}

/**
 * A span of the store's file. Without a page-cache check its send is timed by the store's
 * placement (a stall moves reads to the threadpool for a while); with one, it is not timed.
 */
class StoreFileSpan implements FileSpan {
  constructor(
    readonly fd: number,
    readonly offsetBytes: number,
    readonly lengthBytes: number,
    private readonly placement: IoPlacement | null,
  ) {}

  started(): number {
    return this.placement ? this.placement.started() : 0;
  }

  finished(startedMs: number): void {
    this.placement?.finishedSend(startedMs, this.lengthBytes);
  }
}

function readAt(fd: number, buffer: Uint8Array, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buffer, at, length, position, (err, n) => (err ? reject(toStoreError(err, 'read')) : resolve(n)));
  });
}

function writevAt(fd: number, pieces: Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.writev(fd, pieces, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** The pieces of `data` after its first `skipBytes` bytes (after a short write). */
function remainderOf(data: WriteData, skipBytes: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  let skip = skipBytes;
  for (const piece of data) {
    if (skip >= piece.length) {
      skip -= piece.length;
      continue;
    }
    rest.push(skip > 0 ? piece.subarray(skip) : piece);
    skip = 0;
  }
  return rest;
}

function toStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const message = `${what} failed: ${(err as Error).message}`;
  if (hasCode(err, 'ENOSPC') || hasCode(err, 'EDQUOT') || hasCode(err, 'EFBIG')) return new StoreError('ENOSPC', message, { cause: err });
  if (hasCode(err, 'EROFS') || hasCode(err, 'EPERM') || hasCode(err, 'EACCES')) return new StoreError('EPERM', message, { cause: err });
  return new StoreError('EIO', message, { cause: err });
}

/** fsync(2) of a folder, so that entries created in it are durable. */
function syncFolder(folder: string): void {
  try {
    fsyncPath(folder);
  } catch (err) {
    throw new StoreError('EIO', `cannot make the new store's folder entry durable (fsync ${folder}): ${(err as Error).message}`, { cause: err });
  }
}
