/**
 * A supervised process writes its stdout and stderr straight into its own log file
 * (<logDir>/<name>.log, opened O_APPEND), never into a pipe to the watchdog: a pipe would break
 * when the watchdog restarts and the process would die of SIGPIPE, defeating adoption.
 *
 * `stdout` readiness therefore watches that file (inotify through fs.watch, plus a short poll in
 * case an event is missed) from the offset it had when the process was spawned, and matches
 * each complete line against the pattern.
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, watch, constants as fsConstants, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { MirrorboxError, messageOf } from '../util/errors.js';
import * as limits from './limits.js';

export interface OutputLog {
  path: string;
  /** Descriptor to hand to the child as stdout and stderr; close it in the watchdog after spawning. */
  fd: number;
  /** Size of the file when opened: the new process's output starts here. */
  offsetBytes: number;
}

/**
 * Opens (creating, and rotating when over the limit) the output log of one process. Throws
 * MirrorboxError OUTPUT_LOG when it cannot (folder gone or not a folder, disk full, no fds).
 */
export function openOutputLog(logDir: string, name: string, bytesMax = limits.outputLogBytesMaxDefault): OutputLog {
  const path = join(logDir, `${name}.log`);
  let fd: number;
  try {
    mkdirSync(logDir, { recursive: true });
    if (existsSync(path) && statSync(path).size > bytesMax) renameSync(path, `${path}.1`);
    fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT, 0o640);
  } catch (err) {
    throw outputLogError(path, err);
  }
  return { path, fd, offsetBytes: fstatSync(fd).size };
}

function outputLogError(path: string, err: unknown): MirrorboxError {
  return new MirrorboxError('OUTPUT_LOG', `cannot open the output log ${path}: ${messageOf(err)}`, { cause: err });
}

/**
 * Resolves with the first complete line written after `fromOffset` that matches `pattern`.
 * Rejects with the signal's reason when `signal` aborts (process exit, timeout, shutdown).
 */
export function waitForOutputLine(path: string, fromOffset: number, pattern: RegExp, signal: AbortSignal): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      reject(outputLogError(path, err));
      return;
    }
    let offset = fromOffset;
    let pending = '';
    let scannedBytes = 0;
    let watcher: FSWatcher | undefined;
    let timer: NodeJS.Timeout | undefined;
    const chunk = Buffer.alloc(limits.readyScanChunkBytes);
    let done = false;
    const finish = (err: unknown, line?: string): void => {
      done = true;
      watcher?.close();
      clearInterval(timer);
      signal.removeEventListener('abort', onAbort);
      closeSync(fd);
      if (err !== undefined) reject(err);
      else resolvePromise(line!);
    };
    const onAbort = (): void => finish(signal.reason);
    const scan = (): void => {
      while (!done) {
        const n = readSync(fd, chunk, 0, chunk.length, offset);
        if (n === 0) return;
        offset += n;
        scannedBytes += n;
        pending += chunk.toString('utf8', 0, n);
        let newline: number;
        while ((newline = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (pattern.test(line)) {
            finish(undefined, line);
            return;
          }
        }
        if (scannedBytes > limits.readyScanBytesMax) {
          finish(new MirrorboxError('READY_SCAN_LIMIT', `no line matching /${pattern.source}/ in the first ${limits.readyScanBytesMax} bytes of output`));
          return;
        }
      }
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      watcher = watch(path, { persistent: false }, () => scan());
      watcher.on('error', () => undefined);
    } catch {
      watcher = undefined; // the poll below still finds the line
    }
    timer = setInterval(scan, limits.readyPollMsDefault);
    scan();
  });
}
