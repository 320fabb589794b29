/**
 * Loader for native/sparse.c (hole punching, zero ranges, SEEK_DATA/SEEK_HOLE, page-cache
 * residency, sendfile), built by node-gyp during `npm install`. When the addon is missing (no
 * compiler) the file store falls back to writing zeros and reporting all data, and read replies
 * are always copied through memory; `sparseNative` is then null.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SparseNative {
  punchHole(fd: number, offsetBytes: number, lengthBytes: number): void;
  zeroRange(fd: number, offsetBytes: number, lengthBytes: number): void;
  /** Next offset >= offsetBytes that holds data, or -1 when there is none. */
  seekData(fd: number, offsetBytes: number): number;
  /** Next offset >= offsetBytes that starts a hole (the file size counts as one). */
  seekHole(fd: number, offsetBytes: number): number;
  /** dup(2) with close-on-exec: a second descriptor for the same open socket or file. */
  dupFd(fd: number): number;
  /**
   * Whether every page of the range is in the page cache (cachestat, Linux 6.5+); null when the
   * kernel cannot tell.
   */
  isCached(fd: number, offsetBytes: number, lengthBytes: number): boolean | null;
  /**
   * Sends `head`, then `lengthBytes` of file `fileFd` from `offsetBytes` (sendfile), to the
   * non-blocking socket `socketFd`; returns the bytes sent (head included), fewer when the
   * socket is full or the file ends. Throws (code = errno name) on other errors.
   */
  sendFile(socketFd: number, head: Uint8Array, fileFd: number, offsetBytes: number, lengthBytes: number): number;
}

function load(): SparseNative | null {
  const root = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');
  const require = createRequire(import.meta.url);
  try {
    return require(join(root, 'build', 'Release', 'sparse.node')) as SparseNative;
  } catch {
    return null;
  }
}

export const sparseNative: SparseNative | null = load();
