/**
 * The restart/shutdown journal (the patent's journal 26): append-only JSON lines, made durable
 * with fdatasync, rotated by size, reopened (and continued) when the watchdog restarts.
 * The line format is written down in FORMATS.md beside this file.
 *
 * Appends never wait: `append` stamps the entry (seq, time) at once and queues it; one writer
 * loop turns everything queued into a single write + fdatasync (group commit), so a restart is
 * never held up by the disk. `flush()` resolves once everything appended so far is durable.
 */
import { closeSync, openSync, fsyncSync, fstatSync, readFileSync, existsSync, ftruncateSync, readSync, mkdirSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { MirrorboxError, hasCode, messageOf } from '../util/errors.js';
import { fsyncPath } from '../util/fsync.js';
import * as limits from './limits.js';
import { shiftRotatedFiles } from './rotate.js';

export const journalVersion = 1;

export const journalEvents = [
  'start', // a process was spawned (pid known)
  'ready', // its readiness probe passed (or it was spawned, when it has none)
  'exit', // it exited or vanished (cause: exit code, signal, vanished from /proc, zombie, PID reused)
  'fail', // it is there but not healthy (stopped by SIGSTOP, liveness probe failed, not ready in time)
  'stop', // the watchdog asked it to stop (its stop signal), or found it already stopped
  'kill', // SIGKILL to its process group after the stop timeout
  'restart', // a remedy begins (rung says which)
  'escalate', // the incident moves to the next rung
  'notify', // an alert went out on a channel (or was suppressed: cause says why)
  'hold', // remedies end for this incident; failed processes stay down
  'resolved', // the incident is over: everything stayed up for stableMs
  'resolve', // the operator closed the incident (watchdog restart); the starts follow
  'adopt', // a restarted watchdog took over a process still running from before
  'watchdog', // the watchdog itself started or stopped (cause says which)
] as const;
export type JournalEvent = (typeof journalEvents)[number];

export const journalEntrySchema = z.object({
  v: z.literal(journalVersion),
  seq: z.number().int().nonnegative(),
  time: z.string(),
  timeUs: z.number().int().nonnegative(),
  event: z.enum(journalEvents),
  process: z.string().nullable(),
  pid: z.number().int().positive().nullable(),
  cause: z.string().nullable(),
  rung: z.string().nullable(),
  incident: z.string().nullable(),
  watchdogPid: z.number().int().positive(),
  exitCode: z.number().int().optional(),
  signal: z.string().optional(),
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type JournalEntry = z.output<typeof journalEntrySchema>;

/** What a caller gives; the writer adds v, seq, time, timeUs and watchdogPid. */
export interface JournalInput {
  event: JournalEvent;
  process?: string | null;
  pid?: number | null;
  cause?: string | null;
  rung?: string | null;
  incident?: string | null;
  exitCode?: number;
  signal?: string;
  detail?: Record<string, unknown>;
}

/** Wall-clock time in whole microseconds (monotonic within a process; comparable across processes). */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Parses one journal line; throws MirrorboxError JOURNAL_LINE for anything that is not one. */
export function parseJournalLine(line: string): JournalEntry {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new MirrorboxError('JOURNAL_LINE', 'not JSON');
  }
  const parsed = journalEntrySchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new MirrorboxError('JOURNAL_LINE', `field ${issue.path.join('.') || '(line)'}: ${issue.message}`);
  }
  return parsed.data;
}

function clip(text: string | null | undefined): string | null {
  if (text === null || text === undefined) return null;
  return text.length > limits.causeCharsMax ? `${text.slice(0, limits.causeCharsMax)}…` : text;
}

/** Serializes an entry as one line (with its newline), within journalLineBytesMax. */
export function encodeJournalLine(entry: JournalEntry): Buffer {
  let line = Buffer.from(JSON.stringify(entry) + '\n');
  if (line.length > limits.journalLineBytesMax) {
    const { detail: _dropped, ...rest } = entry;
    line = Buffer.from(JSON.stringify({ ...rest, detail: { truncated: true } }) + '\n');
  }
  assert.ok(line.length <= limits.journalLineBytesMax, 'journal line over journalLineBytesMax');
  return line;
}

export interface JournalOptions {
  bytesMax?: number;
  filesKept?: number;
}

/** The paths of a journal's files, oldest first (rotated ones, then the live one). */
export function journalFiles(path: string, filesKept = limits.journalFilesKeptDefault): string[] {
  const files: string[] = [];
  for (let i = filesKept; i >= 1; i -= 1) if (isRegularFile(`${path}.${i}`)) files.push(`${path}.${i}`);
  if (isRegularFile(path)) files.push(path);
  return files;
}

function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export class JournalWriter {
  readonly path: string;
  private readonly bytesMax: number;
  private readonly filesKept: number;
  /** The live file; undefined after close, and after a rotation that could not create it. */
  private handle: FileHandle | undefined;
  private closed = false;
  private sizeBytes: number;
  private nextSeq: number;
  private queue: Buffer[] = [];
  private waiters: (() => void)[] = [];
  private writing = false;
  /** The last write error, until a write succeeds again. */
  private failure: MirrorboxError | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private queuedBytes = 0;
  /**
   * Entries dropped: the disk failed for longer than the queue could hold, close() gave up on
   * them, or they were appended after close.
   */
  droppedEntries = 0;
  private errorListener: ((err: MirrorboxError) => void) | undefined;
  private reportedClosed = false;
  private listeners: ((entry: JournalEntry) => void)[] = [];

  private constructor(path: string, sizeBytes: number, nextSeq: number, options: JournalOptions) {
    this.path = path;
    this.sizeBytes = sizeBytes;
    this.nextSeq = nextSeq;
    this.bytesMax = options.bytesMax ?? limits.journalBytesMaxDefault;
    this.filesKept = options.filesKept ?? limits.journalFilesKeptDefault;
  }

  /**
   * Opens (creating) the journal. A torn last line (a crash mid-write) is cut off: it was never
   * durable, so nobody relied on it. The sequence continues from the last line on disk.
   */
  static async open(path: string, options: JournalOptions = {}): Promise<JournalWriter> {
    mkdirSync(dirname(path), { recursive: true });
    const existed = existsSync(path);
    const fd = openSync(path, 'a+');
    let sizeBytes: number;
    try {
      sizeBytes = cutTornTail(fd);
      fsyncBestEffort(fd);
    } finally {
      closeSync(fd);
    }
    if (!existed) fsyncPath(dirname(path));
    const writer = new JournalWriter(path, sizeBytes, lastSeq(path, options.filesKept ?? limits.journalFilesKeptDefault) + 1, options);
    writer.handle = await open(path, 'a');
    return writer;
  }

  /** Called with every entry as it is appended (the run command prints them). */
  onAppend(listener: (entry: JournalEntry) => void): void {
    this.listeners.push(listener);
  }

  /** Told about write errors (each time a batch fails). */
  onError(listener: (err: MirrorboxError) => void): void {
    this.errorListener = listener;
  }

  /**
   * Stamps and queues an entry; returns it at once. Durable after the next `flush()`. Never
   * throws for a disk problem: supervision must go on when the journal's disk fails. Failed
   * batches are retried every journalRetryMs; past journalQueueBytesMax the oldest are dropped
   * (counted in droppedEntries; the sequence numbers show the gap).
   *
   * After close() an entry is dropped and counted, and the first one is reported (JOURNAL_CLOSED
   * to the error listener): the writer's owner is exiting (e.g. a process kept running by
   * `stop --keep-processes` exits before the watchdog process has ended). It is not passed to the
   * append listeners, and nothing is written or retried.
   */
  append(input: JournalInput): JournalEntry {
    const timeUs = nowUs();
    const entry: JournalEntry = {
      v: journalVersion,
      seq: this.nextSeq,
      time: new Date(Math.floor(timeUs / 1000)).toISOString(),
      timeUs,
      event: input.event,
      process: input.process ?? null,
      pid: input.pid ?? null,
      cause: clip(input.cause),
      rung: input.rung ?? null,
      incident: input.incident ?? null,
      watchdogPid: process.pid,
      ...(input.exitCode !== undefined ? { exitCode: input.exitCode } : {}),
      ...(input.signal !== undefined ? { signal: input.signal } : {}),
      ...(input.detail !== undefined ? { detail: input.detail } : {}),
    };
    if (this.closed) {
      this.droppedEntries += 1;
      if (!this.reportedClosed) {
        this.reportedClosed = true;
        this.errorListener?.(new MirrorboxError('JOURNAL_CLOSED', `journal ${this.path} is closed: a ${entry.event} entry${entry.process === null ? '' : ` about ${entry.process}`} is not written (and any after it)`));
      }
      return entry;
    }
    this.nextSeq += 1;
    const line = encodeJournalLine(entry);
    this.queue.push(line);
    this.queuedBytes += line.length;
    while (this.queuedBytes > limits.journalQueueBytesMax && this.queue.length > 1) {
      this.queuedBytes -= this.queue.shift()!.length;
      this.droppedEntries += 1;
    }
    for (const listener of this.listeners) listener(entry);
    if (!this.writing && this.retryTimer === undefined) void this.drain();
    return entry;
  }

  /** Resolves when everything appended so far is on disk; rejects (JOURNAL_WRITE) if the disk failed. */
  flush(): Promise<void> {
    if (!this.writing && this.queue.length === 0) return Promise.resolve();
    if (this.failure && !this.writing) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiters.push(() => (this.failure ? reject(this.failure) : resolve()));
    });
  }

  /** Writes what is queued (once: a failing disk is not retried), then closes; what is left is dropped and counted. */
  async close(): Promise<void> {
    await this.flush().catch(() => undefined);
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.closed = true;
    this.droppedEntries += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    await this.handle?.close();
    this.handle = undefined;
  }

  private async drain(): Promise<void> {
    assert.ok(!this.closed, 'journal written after close'); // a bug: append() drops entries after close
    this.writing = true;
    this.retryTimer = undefined;
    let lines: Buffer[] = [];
    let waiters: (() => void)[] = [];
    try {
      while (this.queue.length > 0) {
        lines = this.queue;
        const batch = Buffer.concat(lines);
        this.queue = [];
        this.queuedBytes = 0;
        waiters = this.waiters;
        this.waiters = [];
        if (this.sizeBytes > 0 && this.sizeBytes + batch.length > this.bytesMax) await this.rotate();
        this.handle ??= await this.openLive(); // a rotation failed after the rename
        const handle = this.handle;
        if (this.failure) await handle.truncate(this.sizeBytes); // drop a torn partial write first
        const { bytesWritten } = await handle.write(batch);
        if (bytesWritten !== batch.length) throw new Error(`short write (${bytesWritten} of ${batch.length} bytes)`);
        await handle.datasync();
        this.sizeBytes += batch.length;
        this.failure = undefined;
        lines = [];
        for (const wake of waiters) wake();
        waiters = [];
      }
    } catch (err) {
      // Keep the batch for the next try, ahead of anything appended meanwhile. A torn partial
      // write is cut off when the journal is next opened.
      this.queue = [...lines, ...this.queue];
      this.queuedBytes = this.queue.reduce((n, b) => n + b.length, 0);
      this.failure = new MirrorboxError('JOURNAL_WRITE', `cannot write the journal ${this.path}: ${messageOf(err)}`, { cause: err });
      this.errorListener?.(this.failure);
      for (const wake of waiters) wake(); // they see the failure and reject
      this.retryTimer = setTimeout(() => void this.drain(), limits.journalRetryMs);
      this.retryTimer.unref();
    } finally {
      this.writing = false;
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
  }

  /**
   * path.(k) → path.(k+1) for k = kept-1 … 1, path → path.1, then a fresh path. Once path is
   * renamed the rotation is done: if the fresh file cannot be created, the retry creates it
   * (and does not rotate again, which would push every old file one step towards deletion).
   */
  private async rotate(): Promise<void> {
    const old = this.handle;
    this.handle = undefined;
    await old?.close();
    await shiftRotatedFiles(this.path, this.filesKept);
    this.sizeBytes = 0;
    this.handle = await this.openLive();
  }

  /** Opens (creating) the live file, and makes its directory entry durable. */
  private async openLive(): Promise<FileHandle> {
    const handle = await open(this.path, 'a');
    fsyncPath(dirname(this.path));
    return handle;
  }
}

/** fsync, except on special files that cannot sync (EINVAL): their writes fail visibly instead. */
function fsyncBestEffort(fd: number): void {
  try {
    fsyncSync(fd);
  } catch (err) {
    if (!hasCode(err, 'EINVAL')) throw err;
  }
}

/** Truncates the file after its last newline; returns the new size. */
function cutTornTail(fd: number): number {
  const st = fstatSync(fd);
  if (!st.isFile()) return 0;
  const size = st.size;
  if (size === 0) return 0;
  const chunkBytes = 4096;
  let end = size;
  const buf = Buffer.alloc(chunkBytes);
  while (end > 0) {
    const start = Math.max(0, end - chunkBytes);
    const n = readSync(fd, buf, 0, end - start, start);
    const at = buf.subarray(0, n).lastIndexOf(0x0a);
    if (at >= 0) {
      const keep = start + at + 1;
      if (keep !== size) ftruncateSync(fd, keep);
      return keep;
    }
    end = start;
  }
  ftruncateSync(fd, 0);
  return 0;
}

/** The last sequence number on disk (−1 for none), looking into rotated files if needed. */
function lastSeq(path: string, filesKept: number): number {
  for (const file of journalFiles(path, filesKept).reverse()) {
    const lines = readFileSync(file, 'utf8').split('\n');
    for (let i = lines.length - 1; i >= 0; i -= 1) {
      if (lines[i] === '') continue;
      try {
        return parseJournalLine(lines[i]!).seq;
      } catch {
        continue;
      }
    }
  }
  return -1;
}

export interface JournalQuery {
  /** Entries at or after this time (epoch ms). */
  sinceMs?: number;
  process?: string;
  incident?: string;
}

export interface JournalRead {
  entries: JournalEntry[];
  /** Lines that were not journal entries (kept out of `entries`, counted here). */
  skippedLines: number;
  files: string[];
}

/** Reads a journal and its rotated files, oldest first, keeping entries matching the query. */
export function readJournal(path: string, query: JournalQuery = {}, filesKept = limits.journalFilesKeptDefault): JournalRead {
  const files = journalFiles(path, filesKept);
  const entries: JournalEntry[] = [];
  let skippedLines = 0;
  for (const file of files) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line === '') continue;
      let entry: JournalEntry;
      try {
        entry = parseJournalLine(line);
      } catch {
        skippedLines += 1;
        continue;
      }
      if (query.sinceMs !== undefined && entry.timeUs < query.sinceMs * 1000) continue;
      if (query.process !== undefined && entry.process !== query.process) continue;
      if (query.incident !== undefined && entry.incident !== query.incident) continue;
      entries.push(entry);
    }
  }
  return { entries, skippedLines, files };
}
