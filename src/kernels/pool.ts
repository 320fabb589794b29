import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { MirrorboxError } from '../util/errors.js';
import { checkFrameKey, frameBytesMaxDefault, frameBytesMaxLimit, NonceSequence, sealedFrameBytesMax, type FrameCodecOptions } from './frame.js';
import type { CipherName, CodecName } from './ids.js';
import { copyOut } from './wasm.js';
import { checkZstdLevel } from './zstd.js';

/**
 * A pool of worker threads running the frame pipeline in parallel (the patent's parallel
 * processors, M5), one wasm instance per worker.
 *
 * Flow of a job:
 *   seal()/open() admits it (or rejects QUEUE_FULL when queueDepthMax jobs are unsettled),
 *   assigns a nonce counter in submission order (seal), and queues it. When a worker slot is
 *   free, the main thread copies the input straight into the worker's shared wasm memory and
 *   posts { op, slot, len }. The worker answers { done, len }; the main thread copies the
 *   output out of the slot, frees the slot, and settles jobs strictly in submission order
 *   (a finished job waits for every earlier one).
 *
 * Hard cases:
 *   | event                              | what happens                                         |
 *   |------------------------------------|------------------------------------------------------|
 *   | queueDepthMax jobs unsettled       | submit rejects QUEUE_FULL; whenWritable() waits     |
 *   | job fails as expected (AUTH_FAILED)| that job rejects with the worker's code; order kept |
 *   | worker throws / exits mid-job      | a new worker takes its place; its in-flight jobs are |
 *   |                                    | retried once (then reject WORKER_FAILED); queued    |
 *   |                                    | jobs go on                                           |
 *   | worker dies before it is ready     | start() rejects / the pool fails every job (config) |
 *   | close() with jobs pending          | waits for them, then stops the workers              |
 */

/** The frame options as FrameCodec takes them (every worker runs one), plus the pool's own. */
export interface KernelPoolOptions extends Pick<FrameCodecOptions, 'key' | 'cipher' | 'codec' | 'zstdLevel' | 'frameBytesMax' | 'nonces'> {
  /** Worker threads (default 2, at most the machine's parallelism x 4). */
  workers?: number;
  /** Jobs in flight per worker (default 2: one running, one ready to go). */
  slotsPerWorker?: number;
  /** Jobs admitted but not yet settled (default 4 x workers x slotsPerWorker). */
  queueDepthMax?: number;
}

/** What the main thread tells a new worker (worker.ts). */
export interface WorkerInit {
  key: Uint8Array;
  cipher: CipherName;
  codec: CodecName;
  zstdLevel: number | undefined;
  frameBytesMax: number;
  noncePrefix: Uint8Array;
  slotCount: number;
}

export interface SlotLayout {
  inPtr: number;
  outPtr: number;
  capacityBytes: number;
}

export type JobOp = 'seal' | 'open' | 'crash';

export interface WorkerRequest {
  op: JobOp;
  slot: number;
  len: number;
  aad: Uint8Array | undefined;
  nonceCounter: number | undefined;
}

export type WorkerReply =
  | { type: 'ready'; memory: WebAssembly.Memory; slots: SlotLayout[] }
  | { type: 'done'; slot: number; len: number }
  | { type: 'failed'; slot: number; code: string; message: string };

interface Job {
  op: JobOp;
  input: Uint8Array;
  aad: Uint8Array | undefined;
  nonceCounter: number | undefined;
  settled: boolean;
  /** Times given to a worker (a job in flight on a worker that dies is retried once). */
  attempts: number;
  result: Uint8Array | undefined;
  error: Error | undefined;
  resolve(value: Uint8Array): void;
  reject(error: Error): void;
}

interface WorkerHandle {
  worker: Worker;
  ready: boolean;
  memory: Uint8Array | undefined;
  slots: SlotLayout[];
  running: (Job | undefined)[];
  /** Slots with a job. */
  busy: number;
  lastError: Error | undefined;
}

const workersDefault = 2;
/** At most this many workers per core the machine reports. */
const workersPerCoreMax = 4;
const slotsPerWorkerDefault = 2;
const slotsPerWorkerMax = 16;
/** Ceiling for the queueDepthMax option (jobs admitted and unsettled). */
const queueDepthLimit = 4096;
const queueDepthPerSlot = 4;
const jobAttemptsMax = 2;

export interface KernelPoolStats {
  completed: number;
  failed: number;
  workerRestarts: number;
}

export class KernelPool {
  readonly workerCount: number;
  readonly slotsPerWorker: number;
  readonly queueDepthMax: number;
  readonly frameBytesMax: number;
  readonly nonces: NonceSequence;
  readonly stats: KernelPoolStats = { completed: 0, failed: 0, workerRestarts: 0 };
  readonly #init: WorkerInit;
  readonly #workers = new Set<WorkerHandle>();
  /** Every admitted, unsettled job in submission order. */
  readonly #jobs: Job[] = [];
  /** Jobs waiting for a free slot, in submission order. */
  readonly #waiting: Job[] = [];
  #waiters: (() => void)[] = [];
  #closing = false;
  /** Set once the workers are being terminated on purpose: their exits are not failures. */
  #terminating = false;
  #broken: Error | undefined;

  private constructor(options: KernelPoolOptions) {
    this.workerCount = options.workers ?? workersDefault;
    this.slotsPerWorker = options.slotsPerWorker ?? slotsPerWorkerDefault;
    this.queueDepthMax = options.queueDepthMax ?? queueDepthPerSlot * this.workerCount * this.slotsPerWorker;
    this.frameBytesMax = options.frameBytesMax ?? frameBytesMaxDefault;
    const workersMax = workersPerCoreMax * availableParallelism();
    for (const [name, value, max] of [
      ['workers', this.workerCount, workersMax],
      ['slotsPerWorker', this.slotsPerWorker, slotsPerWorkerMax],
      ['queueDepthMax', this.queueDepthMax, queueDepthLimit],
      ['frameBytesMax', this.frameBytesMax, frameBytesMaxLimit],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1 || value > max) {
        throw new MirrorboxError('BAD_ARGUMENT', `${name} must be an integer 1..${max}, got ${value}`);
      }
    }
    // What the workers' FrameCodecs would refuse, refused here with its own code (a worker
    // that fails to start only reports WORKER_FAILED).
    checkFrameKey(options.key);
    if (options.zstdLevel !== undefined) checkZstdLevel(options.zstdLevel);
    const cipher = options.cipher ?? 'xchacha20-poly1305';
    this.nonces = options.nonces ?? new NonceSequence(cipher);
    assert.equal(this.nonces.cipher, cipher, 'nonce sequence cipher');
    this.#init = {
      key: Uint8Array.from(options.key),
      cipher,
      codec: options.codec ?? 'lz4',
      zstdLevel: options.zstdLevel,
      frameBytesMax: this.frameBytesMax,
      noncePrefix: this.nonces.prefix,
      slotCount: this.slotsPerWorker,
    };
  }

  /** Starts the workers and resolves once every one is ready. */
  static async start(options: KernelPoolOptions): Promise<KernelPool> {
    const pool = new KernelPool(options);
    try {
      await Promise.all(Array.from({ length: pool.workerCount }, () => pool.#spawn()));
    } catch (err) {
      await pool.#terminateAll();
      throw err;
    }
    return pool;
  }

  /** Jobs admitted and not yet settled. */
  get pending(): number {
    return this.#jobs.length;
  }

  /** True when a job can be admitted now. */
  get writable(): boolean {
    return this.#jobs.length < this.queueDepthMax && !this.#closing && this.#broken === undefined;
  }

  /** Resolves when a job can be admitted (backpressure for producers). */
  whenWritable(): Promise<void> {
    return this.#waitFor(() => this.writable || this.#closing || this.#broken !== undefined);
  }

  /** Resolves when every admitted job has settled. */
  drain(): Promise<void> {
    return this.#waitFor(() => this.#jobs.length === 0);
  }

  /** Seals a plaintext into a frame; settles in submission order. */
  seal(plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array> {
    return this.#submit('seal', plaintext, aad);
  }

  /** Opens a frame; settles in submission order; rejects with the frame's error code. */
  open(frame: Uint8Array, aad?: Uint8Array): Promise<Uint8Array> {
    return this.#submit('open', frame, aad);
  }

  /**
   * Fault injection: queues a job that makes the worker running it throw an uncaught error.
   * The job rejects WORKER_FAILED; the other jobs in flight on that worker are retried once on
   * another (or the replacement) worker; the worker is replaced.
   */
  injectWorkerCrash(): Promise<Uint8Array> {
    return this.#submit('crash', new Uint8Array(0), undefined);
  }

  /** Waits for pending jobs, then stops the workers. Further submits reject POOL_CLOSED. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#wake();
    await this.drain();
    await this.#terminateAll();
  }

  /** Returns a Duplex (object mode): write plaintexts (or frames), read frames (or plaintexts) in order, with backpressure. */
  sealStream(aad?: Uint8Array): Duplex {
    return new JobStream(this, 'seal', aad);
  }

  openStream(aad?: Uint8Array): Duplex {
    return new JobStream(this, 'open', aad);
  }

  #submit(op: JobOp, input: Uint8Array, aad: Uint8Array | undefined): Promise<Uint8Array> {
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    if (this.#closing) return Promise.reject(new MirrorboxError('POOL_CLOSED', 'the kernel pool is closed'));
    if (this.#jobs.length >= this.queueDepthMax) {
      return Promise.reject(new MirrorboxError('QUEUE_FULL', `${this.#jobs.length} jobs pending (queueDepthMax); await whenWritable()`));
    }
    const inputBytesMax = op === 'seal' ? this.frameBytesMax : sealedFrameBytesMax(this.frameBytesMax);
    if (input.length > inputBytesMax) {
      const what = op === 'seal' ? 'plaintext' : 'frame';
      const code = op === 'seal' ? 'TOO_LARGE' : 'BAD_FRAME';
      return Promise.reject(new MirrorboxError(code, `${what} of ${input.length} bytes exceeds the ${inputBytesMax} allowed`));
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const job: Job = {
        op,
        input,
        aad,
        nonceCounter: op === 'seal' ? this.nonces.take() : undefined,
        settled: false,
        attempts: 0,
        result: undefined,
        error: undefined,
        resolve,
        reject,
      };
      this.#jobs.push(job);
      this.#waiting.push(job);
      this.#dispatch();
    });
  }

  /** Gives waiting jobs to free slots, each to the ready worker with the fewest jobs running. */
  #dispatch(): void {
    while (this.#waiting.length > 0) {
      let best: WorkerHandle | undefined;
      for (const handle of this.#workers) {
        if (handle.ready && handle.busy < handle.slots.length && (best === undefined || handle.busy < best.busy)) best = handle;
      }
      if (best === undefined) return;
      const slot = best.running.indexOf(undefined);
      const job = this.#waiting.shift()!;
      const layout = best.slots[slot]!;
      assert.ok(job.input.length <= layout.capacityBytes, 'job fits its slot');
      best.memory!.set(job.input, layout.inPtr);
      best.running[slot] = job;
      best.busy++;
      job.attempts++;
      const request: WorkerRequest = { op: job.op, slot, len: job.input.length, aad: job.aad, nonceCounter: job.nonceCounter };
      best.worker.postMessage(request);
    }
  }

  #finish(job: Job, result: Uint8Array | undefined, error: Error | undefined): void {
    assert.ok(!job.settled && job.result === undefined && job.error === undefined, 'a job finishes once');
    job.result = result;
    job.error = error;
    // Settle in submission order: only a prefix of finished jobs.
    while (this.#jobs.length > 0) {
      const head = this.#jobs[0]!;
      if (head.result === undefined && head.error === undefined) break;
      this.#jobs.shift();
      head.settled = true;
      if (head.error !== undefined) {
        this.stats.failed++;
        head.reject(head.error);
      } else {
        this.stats.completed++;
        head.resolve(head.result!);
      }
    }
    this.#wake();
  }

  #onReply(handle: WorkerHandle, reply: WorkerReply): void {
    if (reply.type === 'ready') {
      handle.memory = new Uint8Array(reply.memory.buffer);
      handle.slots = reply.slots;
      handle.running = reply.slots.map(() => undefined);
      handle.ready = true;
      this.#dispatch();
      return;
    }
    const job = handle.running[reply.slot];
    assert.ok(job !== undefined, `reply for idle slot ${reply.slot}`);
    handle.running[reply.slot] = undefined;
    handle.busy--;
    if (reply.type === 'done') {
      const layout = handle.slots[reply.slot]!;
      assert.ok(reply.len >= 0 && reply.len <= layout.capacityBytes, 'worker result fits its slot');
      // The one copy out of the slot (into memory that need not be zeroed first).
      this.#finish(job, copyOut(handle.memory!.subarray(layout.outPtr, layout.outPtr + reply.len)), undefined);
    } else {
      this.#finish(job, undefined, new MirrorboxError(reply.code, reply.message));
    }
    this.#dispatch();
  }

  #onExit(handle: WorkerHandle, exitCode: number): void {
    this.#workers.delete(handle);
    const wasReady = handle.ready;
    handle.ready = false;
    const cause = handle.lastError ?? new Error(`worker exited with code ${exitCode}`);
    // Jobs in flight on the dead worker: retry each once elsewhere (a seal retried reuses its
    // nonce counter on the same plaintext, so it yields the same frame); the injected crash
    // and jobs already retried fail.
    const retry: Job[] = [];
    for (let slot = 0; slot < handle.running.length; slot++) {
      const job = handle.running[slot];
      if (job === undefined) continue;
      handle.running[slot] = undefined;
      handle.busy--;
      if (job.op !== 'crash' && job.attempts < jobAttemptsMax && !this.#terminating) retry.push(job);
      else this.#finish(job, undefined, new MirrorboxError('WORKER_FAILED', `kernel worker failed during this job: ${cause.message}`, { cause }));
    }
    this.#waiting.unshift(...retry.sort((a, b) => this.#jobs.indexOf(a) - this.#jobs.indexOf(b)));
    this.#dispatch();
    // While close() drains, a dead worker is replaced as at any other time: the jobs still
    // admitted must settle, or close() would wait for them forever.
    if (this.#terminating) return;
    if (!wasReady) {
      // A worker that cannot even start will not start on a retry: fail the pool.
      this.#broken = new MirrorboxError('WORKER_FAILED', `kernel worker failed to start: ${cause.message}`, { cause });
      for (const job of this.#waiting.splice(0)) this.#finish(job, undefined, this.#broken);
      this.#wake();
      return;
    }
    this.stats.workerRestarts++;
    this.#spawn().catch(() => {
      // #onExit of the replacement has already failed the pool.
    });
  }

  #spawn(): Promise<void> {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: this.#init });
    const handle: WorkerHandle = { worker, ready: false, memory: undefined, slots: [], running: [], busy: 0, lastError: undefined };
    this.#workers.add(handle);
    return new Promise((resolve, reject) => {
      worker.on('message', (reply: WorkerReply) => {
        this.#onReply(handle, reply);
        if (reply.type === 'ready') resolve();
      });
      worker.on('error', (err) => {
        handle.lastError = err;
      });
      worker.on('exit', (code) => {
        if (!handle.ready) reject(new MirrorboxError('WORKER_FAILED', `kernel worker failed to start: ${handle.lastError?.message ?? `exit ${code}`}`));
        this.#onExit(handle, code);
      });
    });
  }

  async #terminateAll(): Promise<void> {
    // Terminated on purpose: #onExit must not replace them (after a failed start() the
    // workers that did come up would otherwise be respawned and leak).
    this.#closing = true;
    this.#terminating = true;
    const handles = [...this.#workers];
    this.#workers.clear();
    await Promise.all(handles.map((h) => h.worker.terminate()));
  }

  #waitFor(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (condition()) resolve();
        else this.#waiters.push(check);
      };
      this.#waiters.push(check);
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const check of waiters) check();
  }
}

/**
 * Object-mode Duplex over a pool: each written chunk becomes one job; results come out in
 * order. A write is acknowledged only while fewer than queueDepthMax of its jobs are in
 * flight, the pool has room, and the readable side has not signalled "full" (push() returned
 * false and _read has not been called since), so a slow reader stops the writer and memory
 * stays bounded by about twice queueDepthMax items.
 */
class JobStream extends Duplex {
  readonly #pool: KernelPool;
  readonly #op: 'seal' | 'open';
  readonly #aad: Uint8Array | undefined;
  #inFlight = 0;
  #readableFull = false;
  #heldWrite: (() => void) | undefined;
  #heldFinal: (() => void) | undefined;

  constructor(pool: KernelPool, op: 'seal' | 'open', aad: Uint8Array | undefined) {
    super({ objectMode: true, readableHighWaterMark: pool.queueDepthMax, writableHighWaterMark: 1 });
    this.#pool = pool;
    this.#op = op;
    this.#aad = aad;
  }

  #release(): void {
    if (this.#heldWrite !== undefined && !this.#readableFull && this.#inFlight < this.#pool.queueDepthMax) {
      if (this.#pool.pending < this.#pool.queueDepthMax) {
        const callback = this.#heldWrite;
        this.#heldWrite = undefined;
        callback();
      } else {
        void this.#pool.whenWritable().then(() => this.#release());
      }
    }
    if (this.#heldFinal !== undefined && this.#inFlight === 0) {
      const callback = this.#heldFinal;
      this.#heldFinal = undefined;
      this.push(null);
      callback();
    }
  }

  override _write(chunk: Uint8Array, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // Writes come one at a time, after the previous one was acknowledged with room; only
    // another user of a shared pool can have filled it since.
    if (this.#pool.pending >= this.#pool.queueDepthMax) {
      void this.#pool.whenWritable().then(() => this._write(chunk, encoding, callback));
      return;
    }
    const job = this.#op === 'seal' ? this.#pool.seal(chunk, this.#aad) : this.#pool.open(chunk, this.#aad);
    this.#inFlight++;
    job.then(
      (result) => {
        this.#inFlight--;
        if (!this.push(result)) this.#readableFull = true;
        this.#release();
      },
      (err: Error) => {
        this.#inFlight--;
        this.destroy(err);
      },
    );
    this.#heldWrite = () => callback();
    this.#release();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#heldFinal = () => callback();
    this.#release();
  }

  override _read(): void {
    this.#readableFull = false;
    this.#release();
  }
}
