/**
 * Size-based rotation, shared by the journal and the processes' output logs:
 * path.(k) → path.(k+1) for k = kept−1 … 1 (path.kept is dropped), then path → path.1.
 * Old files that are missing are skipped; a missing `path` is an error (ENOENT) for the caller.
 * Asynchronous throughout: a slow disk delays the rotation, never the event loop.
 */
import { rename, rm } from 'node:fs/promises';
import { hasCode } from '../util/errors.js';

export async function shiftRotatedFiles(path: string, filesKept: number): Promise<void> {
  await rm(`${path}.${filesKept}`, { force: true });
  for (let i = filesKept - 1; i >= 1; i -= 1) {
    try {
      await rename(`${path}.${i}`, `${path}.${i + 1}`);
    } catch (err) {
      if (!hasCode(err, 'ENOENT')) throw err;
    }
  }
  await rename(path, `${path}.1`);
}
