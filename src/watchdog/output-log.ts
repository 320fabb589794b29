/**
 * A supervised process's stdout and stderr: they go into a named pipe (FIFO) in the state
 * folder, `<stateDir>/<name>.pipe`; the watchdog reads it and writes `<logDir>/<name>.log`
 * itself, rotating by size at line boundaries. After a rotation the next line lands in the new
 * file: no process keeps a descriptor of a log file (README.md: "Output logs").
 *
 * Who holds the FIFO, and why it is opened O_RDWR on both sides:
 *
 * | holder                    | open                                  | what it buys                                    |
 * |---------------------------|---------------------------------------|-------------------------------------------------|
 * | the watchdog (the reader) | once for its life, O_RDWR, made       | never an EOF between instances; never blocks    |
 * |                           | non-blocking by libuv (net.Socket)    |                                                 |
 * | each instance (writer)    | afresh per spawn, O_RDWR, blocking    | a reader always exists: no SIGPIPE when the     |
 * |                           | (its own file description)            | watchdog dies; the writes wait in the pipe      |
 * |                           |                                       | (64 KiB) until the next watchdog reads on       |
 *
 * Bounds (the watchdog never blocks on the disk, nor grows without bound):
 *
 * | situation                          | what happens                                                              |
 * |------------------------------------|---------------------------------------------------------------------------|
 * | the disk keeps up                  | one write in flight; what arrives meanwhile is written next, in one write |
 * | the disk is slow                   | read output waits in memory up to bufferBytesMax; past that, reading      |
 * |                                    | pauses, and the process's writes wait in the pipe (as on a slow disk)     |
 * | the log cannot be written (ENOSPC) | that output is dropped and counted, the error reported once per spell;    |
 * |                                    | the next write opens the file again                                       |
 * | a line would take the file past    | the file ends after the last whole line that fits, then rotates; a        |
 * | bytesMax                           | line longer than a whole file is cut at bytesMax                          |
 *
 * `stdout` readiness reads the lines as they arrive from the pipe (expectLine), from the
 * moment the new instance is started; what an ended instance left in the pipe is taken in
 * first (drainPending), so its lines never count as the new one's.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, openSync, readSync, unlinkSync, constants as fsConstants } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { MirrorboxError, hasCode, messageOf } from '../util/errors.js';
import * as limits from './limits.js';
import { shiftRotatedFiles } from './rotate.js';

export interface OutputLogOptions {
  logDir: string;
  /** Where the FIFO lives: the state folder (0700). */
  pipeDir: string;
  name: string;
  bytesMax?: number | undefined;
  filesKept?: number | undefined;
  bufferBytesMax?: number | undefined;
  /** Told when writing the log fails (once per spell of failures). */
  onError?: ((err: MirrorboxError) => void) | undefined;
}

const logOpenFlags = fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT;
const logFileMode = 0o640;
const newline = 0x0a;

/**
 * How many bytes of `data` go into a log file holding `sizeBytes` (at most `bytesMax`) before
 * it must rotate: all of it if it fits, else up to the last newline that fits; 0 means rotate
 * first. Only an empty file takes a piece of a line (one longer than a whole file).
 */
export function bytesBeforeRotation(data: Uint8Array, sizeBytes: number, bytesMax: number): number {
  assert.ok(bytesMax > 0, 'bytesMax must be positive');
  const room = bytesMax - sizeBytes;
  if (data.length <= room) return data.length;
  const lastNewline = room > 0 ? data.lastIndexOf(newline, room - 1) : -1;
  if (lastNewline >= 0) return lastNewline + 1;
  return sizeBytes === 0 ? room : 0;
}

export class OutputLog {
  readonly path: string;
  readonly pipePath: string;
  readonly bytesMax: number;
  readonly filesKept: number;
  readonly bufferBytesMax: number;
  /** Bytes read from the pipe and not yet written (or dropped). */
  queuedBytes = 0;
  /** The most `queuedBytes` has been (it stays near bufferBytesMax: see the table above). */
  queuedBytesPeak = 0;
  /** Output dropped because the log could not be written. */
  droppedBytes = 0;
  private readonly logDir: string;
  private readonly reader: Socket;
  private readonly readFd: number;
  private readonly onError: (err: MirrorboxError) => void;
  private readonly drainChunk = Buffer.alloc(limits.outputDrainChunkBytes);
  private queue: Buffer[] = [];
  private handle: FileHandle | undefined;
  /** Opened by reopen(); used from the next write on, unless a rotation came in between. */
  private fresh: { handle: FileHandle; rotations: number } | undefined;
  private sizeBytes = 0;
  private rotations = 0;
  private writing = false;
  private paused = false;
  private failing = false;
  private closed = false;
  private lineWait: LineWait | undefined;
  private idleWaiters: (() => void)[] = [];

  private constructor(options: OutputLogOptions, pipePath: string, readFd: number) {
    this.logDir = options.logDir;
    this.path = join(options.logDir, `${options.name}.log`);
    this.pipePath = pipePath;
    this.bytesMax = options.bytesMax ?? limits.outputLogBytesMaxDefault;
    this.filesKept = options.filesKept ?? limits.outputLogFilesKeptDefault;
    this.bufferBytesMax = options.bufferBytesMax ?? limits.outputBufferBytesMax;
    this.onError = options.onError ?? (() => undefined);
    this.readFd = readFd;
    this.reader = new Socket({ fd: readFd, readable: true, writable: false });
    this.reader.on('data', (chunk: Buffer) => this.take(chunk));
    this.reader.on('error', (err) => this.onError(outputError(`cannot read the output pipe ${this.pipePath}`, err)));
  }

  /**
   * Creates the FIFO if needed (mode 0600) and starts reading it. Throws MirrorboxError
   * OUTPUT_LOG when it cannot.
   */
  static open(options: OutputLogOptions): OutputLog {
    const pipePath = join(options.pipeDir, `${options.name}.pipe`);
    let fd: number;
    try {
      makeFifo(pipePath);
      fd = openSync(pipePath, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
    } catch (err) {
      throw outputError(`cannot open the output pipe ${pipePath}`, err);
    }
    return new OutputLog(options, pipePath, fd);
  }

  /**
   * A descriptor for one new instance's stdout and stderr: a fresh O_RDWR open of the FIFO
   * (its own file description, so the instance may make it non-blocking without touching any
   * other). The spawner closes it after the fork. Throws MirrorboxError OUTPUT_LOG.
   */
  childFd(): number {
    try {
      return openSync(this.pipePath, fsConstants.O_RDWR);
    } catch (err) {
      throw outputError(`cannot open the output pipe ${this.pipePath}`, err);
    }
  }

  /**
   * Before each start: opens the log file afresh, so the start fails (MirrorboxError
   * OUTPUT_LOG) when the log cannot be written, and a log moved away or deleted is created
   * again. Never waits for output still being written.
   */
  async reopen(): Promise<void> {
    const rotations = this.rotations;
    let handle: FileHandle;
    try {
      handle = await openLogFile(this.logDir, this.path);
    } catch (err) {
      throw outputError(`cannot open the output log ${this.path}`, err);
    }
    const previous = this.fresh;
    this.fresh = { handle, rotations };
    await previous?.handle.close().catch(() => undefined);
  }

  /**
   * Takes in, at once, what the pipe holds now (at most outputDrainBytesMax): before a new
   * instance starts, the output of the one that ended goes to the log, not to the new one's
   * readiness check.
   */
  drainPending(): void {
    if (this.closed) return;
    while (this.reader.readableLength > 0 && this.reader.read() !== null) {
      // read() hands the chunks the stream held (while paused) to the 'data' listener
    }
    let drainedBytes = 0;
    while (drainedBytes < limits.outputDrainBytesMax) {
      let n: number;
      try {
        n = readSync(this.readFd, this.drainChunk, 0, this.drainChunk.length, null);
      } catch (err) {
        if (hasCode(err, 'EAGAIN')) return;
        throw err;
      }
      if (n === 0) return;
      drainedBytes += n;
      this.take(Buffer.from(this.drainChunk.subarray(0, n)));
    }
  }

  /** From now on, looks for a complete line matching `pattern`; replaces any earlier wait. */
  expectLine(pattern: RegExp): LineWait {
    this.lineWait?.cancel(new Error('a newer start is waiting for its line'));
    const wait = new LineWait(pattern, () => {
      if (this.lineWait === wait) this.lineWait = undefined;
    });
    this.lineWait = wait;
    return wait;
  }

  /** Resolves once everything read so far is written (or dropped). */
  idle(): Promise<void> {
    if (!this.writing && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolveIdle) => this.idleWaiters.push(resolveIdle));
  }

  /**
   * Takes in what the pipe holds, stops reading, writes what is queued (waiting at most
   * outputFlushWaitMsMax for the disk), and closes the files. Instances still running keep
   * writing into the pipe, for the next watchdog to read.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.drainPending();
    this.closed = true;
    this.lineWait?.cancel(new Error('the watchdog is stopping'));
    this.reader.destroy();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise((r) => (timer = setTimeout(r, limits.outputFlushWaitMsMax)))]);
    clearTimeout(timer);
    await this.fresh?.handle.close().catch(() => undefined);
    await this.handle?.close().catch(() => undefined);
  }

  private take(chunk: Buffer): void {
    this.lineWait?.feed(chunk);
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    this.queuedBytesPeak = Math.max(this.queuedBytesPeak, this.queuedBytes);
    if (this.queuedBytes > this.bufferBytesMax && !this.paused && !this.closed) {
      this.paused = true;
      this.reader.pause();
    }
    if (!this.writing) void this.pump();
  }

  /** The one writer: everything queued, as one write per turn, rotating where needed. */
  private async pump(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        let batch = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue);
        this.queue = [];
        const batchBytes = batch.length;
        try {
          await this.takeFresh();
          while (batch.length > 0) {
            this.handle ??= await this.openLive();
            const n = bytesBeforeRotation(batch, this.sizeBytes, this.bytesMax);
            if (n > 0) {
              await writeAll(this.handle, batch.subarray(0, n));
              this.sizeBytes += n;
              batch = batch.subarray(n);
            }
            if (batch.length > 0) await this.rotate();
          }
          this.failing = false;
        } catch (err) {
          this.droppedBytes += batch.length;
          await this.handle?.close().catch(() => undefined);
          this.handle = undefined;
          if (!this.failing) this.onError(outputError(`cannot write the output log ${this.path} (output dropped until it can)`, err));
          this.failing = true;
        }
        this.queuedBytes -= batchBytes;
        assert.ok(this.queuedBytes >= 0, 'output queue accounting');
        if (this.paused && this.queuedBytes <= this.bufferBytesMax / 2 && !this.closed) {
          this.paused = false;
          this.reader.resume();
        }
      }
    } finally {
      this.writing = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  private async takeFresh(): Promise<void> {
    const fresh = this.fresh;
    if (!fresh) return;
    this.fresh = undefined;
    if (fresh.rotations !== this.rotations) {
      // Opened before a rotation: it names what is now <name>.log.1.
      await fresh.handle.close();
      return;
    }
    await this.handle?.close();
    this.handle = fresh.handle;
    this.sizeBytes = (await fresh.handle.stat()).size;
  }

  private async openLive(): Promise<FileHandle> {
    const handle = await openLogFile(this.logDir, this.path);
    this.sizeBytes = (await handle.stat()).size;
    return handle;
  }

  private async rotate(): Promise<void> {
    const old = this.handle;
    this.handle = undefined;
    await old?.close();
    this.rotations += 1;
    try {
      await shiftRotatedFiles(this.path, this.filesKept);
    } catch (err) {
      if (!hasCode(err, 'ENOENT')) throw err; // the live file was removed: nothing to shift
    }
    this.handle = await this.openLive();
  }
}

/** A wait for the readiness line of one new instance (see OutputLog.expectLine). */
export class LineWait {
  /** Resolves with the first matching line; rejects when cancelled or past readyScanBytesMax. */
  readonly line: Promise<string>;
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';
  private scannedBytes = 0;
  private settled = false;
  private resolveLine!: (line: string) => void;
  private rejectLine!: (err: unknown) => void;

  constructor(
    private readonly pattern: RegExp,
    private readonly release: () => void,
  ) {
    this.line = new Promise((resolveLine, rejectLine) => {
      this.resolveLine = resolveLine;
      this.rejectLine = rejectLine;
    });
    this.line.catch(() => undefined); // a wait nobody awaits any more must not crash the process
  }

  feed(chunk: Buffer): void {
    if (this.settled) return;
    this.scannedBytes += chunk.length;
    this.pending += this.decoder.write(chunk);
    let at: number;
    while ((at = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, at);
      this.pending = this.pending.slice(at + 1);
      if (this.pattern.test(line)) {
        this.settle(undefined, line);
        return;
      }
    }
    if (this.scannedBytes > limits.readyScanBytesMax) {
      this.settle(new MirrorboxError('READY_SCAN_LIMIT', `no line matching /${this.pattern.source}/ in the first ${limits.readyScanBytesMax} bytes of output`));
    }
  }

  cancel(reason: unknown): void {
    this.settle(reason);
  }

  private settle(err: unknown, line?: string): void {
    if (this.settled) return;
    this.settled = true;
    this.pending = '';
    this.release();
    if (err !== undefined) this.rejectLine(err);
    else this.resolveLine(line!);
  }
}

/** The FIFO under `path`, created 0600 unless one is there (anything else there is replaced). */
function makeFifo(path: string): void {
  try {
    if (lstatSync(path).isFIFO()) return;
    unlinkSync(path);
  } catch (err) {
    if (!hasCode(err, 'ENOENT')) throw err;
  }
  // Node has no mkfifo(3); coreutils' mkfifo creates it with the mode given (never wider).
  execFileSync('mkfifo', ['-m', '600', path], { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function openLogFile(logDir: string, path: string): Promise<FileHandle> {
  try {
    return await open(path, logOpenFlags, logFileMode);
  } catch (err) {
    if (!hasCode(err, 'ENOENT')) throw err;
  }
  await mkdir(logDir, { recursive: true });
  return open(path, logOpenFlags, logFileMode);
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let at = 0;
  while (at < data.length) {
    const { bytesWritten } = await handle.write(data, at, data.length - at);
    at += bytesWritten;
  }
}

function outputError(what: string, err: unknown): MirrorboxError {
  return new MirrorboxError('OUTPUT_LOG', `${what}: ${messageOf(err)}`, { cause: err });
}
