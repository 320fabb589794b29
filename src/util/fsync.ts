/**
 * fsync(2) of a file or folder by path (opened read-only, synced, closed). A folder's fsync makes
 * the entries created or renamed in it durable; fdatasync of a file does not cover them.
 */
import { closeSync, fsyncSync, openSync } from 'node:fs';

export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
