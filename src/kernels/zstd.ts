import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { MirrorboxError } from '../util/errors.js';

/**
 * zstd through the `zstd-codec` package (Emscripten build of libzstd), the second codec
 * beside LZ4. One ZstdContext per thread: one Emscripten instance whose heap is sized up
 * front for the largest input, one codec object and two byte vectors reserved once and
 * reused for every call, so a call allocates nothing on the JS side and never grows the
 * heap. (The package's simple API calls ZSTD_compress, which sets up its compression
 * workspace inside libzstd on each call; the package exposes no way to keep a ZSTD_CCtx.)
 */

/**
 * zstd-codec's wasm module declares a 16 MiB maximum heap, which must hold the input, the
 * output and libzstd's workspace. Measured (bench corpus): at 2 MiB inputs levels 1..9 fit
 * and level 12 runs out of memory; at 4 MiB level 6 already does. Hence these limits.
 */
export const zstdHeapBytes = 16 * 1024 * 1024;
export const zstdSizeBytesMax = 2 * 1024 * 1024;
export const zstdLevelMin = 1;
export const zstdLevelMax = 9;
export const zstdLevelDefault = 3;

/** Throws BAD_ARGUMENT unless `level` is a supported zstd level. */
export function checkZstdLevel(level: number): void {
  if (!Number.isInteger(level) || level < zstdLevelMin || level > zstdLevelMax) {
    throw new MirrorboxError('BAD_ARGUMENT', `zstd level must be an integer ${zstdLevelMin}..${zstdLevelMax}, got ${level}`);
  }
}

/** The parts of the package's Emscripten binding we use. */
interface VectorU8 {
  resize(size: number, fill: number): void;
  size(): number;
  delete(): void;
}
interface ZstdBinding {
  VectorU8: new () => VectorU8;
  ZstdCodec: new () => {
    compressBound(size: number): number;
    contentSize(src: VectorU8): number;
    compress(dst: VectorU8, src: VectorU8, level: number): number;
    decompress(dst: VectorU8, src: VectorU8): number;
  };
  toTypedArrayView(vector: VectorU8): Uint8Array;
}
type BindingFactory = (module: Record<string, unknown>) => unknown;

const require = createRequire(import.meta.url);

/**
 * Resolves with { binding }, never with the binding itself: the Emscripten module object has
 * a `then` method, and a promise resolved with it never settles.
 */
function loadBinding(totalMemoryBytes: number): Promise<{ binding: ZstdBinding }> {
  // The package's own loader (lib/module.js) does exactly this, without a way to pass options.
  const factory = require('zstd-codec/lib/zstd-codec-binding-wasm.js') as BindingFactory;
  return new Promise<{ binding: ZstdBinding }>((resolve, reject) => {
    const module: Record<string, unknown> = {
      TOTAL_MEMORY: totalMemoryBytes,
      onRuntimeInitialized: () => resolve({ binding: module as unknown as ZstdBinding }),
      onAbort: (what: unknown) => reject(new MirrorboxError('ZSTD_FAILED', `zstd-codec failed: ${String(what)}`)),
      print: () => {},
      printErr: () => {},
    };
    factory(module);
  });
}

export interface ZstdContextOptions {
  /** The largest input (to compress) or output (of decompress) in bytes. */
  sizeBytesMax: number;
}

export class ZstdContext {
  readonly sizeBytesMax: number;
  readonly #binding: ZstdBinding;
  readonly #codec: InstanceType<ZstdBinding['ZstdCodec']>;
  readonly #src: VectorU8;
  readonly #dst: VectorU8;
  readonly #boundMax: number;
  #dead: string | undefined;

  private constructor(binding: ZstdBinding, sizeBytesMax: number) {
    this.#binding = binding;
    this.sizeBytesMax = sizeBytesMax;
    this.#codec = new binding.ZstdCodec();
    this.#boundMax = this.#codec.compressBound(sizeBytesMax);
    assert.ok(this.#boundMax >= sizeBytesMax, 'zstd compress bound');
    this.#src = new binding.VectorU8();
    this.#dst = new binding.VectorU8();
    // Reserve both vectors at their largest once; later resizes stay within capacity.
    this.#src.resize(this.#boundMax, 0);
    this.#dst.resize(this.#boundMax, 0);
  }

  /** Starts an Emscripten instance for inputs up to sizeBytesMax (<= zstdSizeBytesMax). */
  static async create(options: ZstdContextOptions): Promise<ZstdContext> {
    const size = options.sizeBytesMax;
    if (!Number.isSafeInteger(size) || size < 1 || size > zstdSizeBytesMax) {
      throw new MirrorboxError('BAD_ARGUMENT', `zstd sizeBytesMax must be 1..${zstdSizeBytesMax} (zstd-codec's heap is ${zstdHeapBytes} bytes), got ${size}`);
    }
    const { binding } = await loadBinding(zstdHeapBytes);
    return new ZstdContext(binding, size);
  }

  /** The largest zstd output for an input of `size` bytes. */
  compressBound(size: number): number {
    return this.#codec.compressBound(size);
  }

  /**
   * Compresses `src` and passes a view of the result to `sink` (valid only during the call);
   * returns what the sink returns. One copy in; the caller decides where the output goes.
   */
  compressWith<T>(src: Uint8Array, level: number, sink: (compressed: Uint8Array) => T): T {
    checkZstdLevel(level);
    if (src.length > this.sizeBytesMax) {
      throw new MirrorboxError('TOO_LARGE', `zstd input of ${src.length} bytes exceeds the ${this.sizeBytesMax} configured`);
    }
    this.#src.resize(src.length, 0);
    this.#binding.toTypedArrayView(this.#src).set(src);
    this.#dst.resize(this.#boundMax, 0);
    const size = this.#guard(() => this.#codec.compress(this.#dst, this.#src, level));
    if (size < 0) throw new MirrorboxError('ZSTD_FAILED', `zstd compression failed (code ${size})`);
    return sink(this.#binding.toTypedArrayView(this.#dst).subarray(0, size));
  }

  /**
   * Decompresses one zstd frame that declares its content size (ours always do), at most
   * maxOutputBytes (<= sizeBytesMax), and passes a view of the output to `sink`. Throws
   * CORRUPT_INPUT on a bad or truncated frame, an undeclared or too large size, or output
   * that differs from the declared size.
   */
  decompressWith<T>(src: Uint8Array, maxOutputBytes: number, sink: (plain: Uint8Array) => T): T {
    if (maxOutputBytes > this.sizeBytesMax) {
      throw new MirrorboxError('TOO_LARGE', `zstd output of ${maxOutputBytes} bytes exceeds the ${this.sizeBytesMax} configured`);
    }
    if (src.length > this.#boundMax) {
      throw new MirrorboxError('CORRUPT_INPUT', `zstd input of ${src.length} bytes is larger than any frame of ${this.sizeBytesMax} bytes`);
    }
    this.#src.resize(src.length, 0);
    this.#binding.toTypedArrayView(this.#src).set(src);
    const declared = src.length === 0 ? -1 : this.#codec.contentSize(this.#src);
    if (declared < 0) throw new MirrorboxError('CORRUPT_INPUT', 'not a zstd frame with a declared content size');
    if (declared > maxOutputBytes) {
      throw new MirrorboxError('CORRUPT_INPUT', `zstd frame declares ${declared} bytes, more than the ${maxOutputBytes} allowed`);
    }
    // The capacity is the declared size (at least one byte, for libzstd's sake): libzstd stops
    // with an error rather than write more.
    this.#dst.resize(Math.max(declared, 1), 0);
    const size = this.#guard(() => this.#codec.decompress(this.#dst, this.#src));
    if (size !== declared) {
      throw new MirrorboxError('CORRUPT_INPUT', `zstd frame is corrupt (decoded ${size < 0 ? 'nothing' : `${size} bytes`}, declared ${declared})`);
    }
    return sink(this.#binding.toTypedArrayView(this.#dst).subarray(0, size));
  }

  /**
   * Runs a libzstd call. Emscripten's abort (it throws a string, e.g. on out-of-memory) leaves
   * the instance unusable: from then on every call throws ZSTD_FAILED.
   */
  #guard(call: () => number): number {
    if (this.#dead !== undefined) throw new MirrorboxError('ZSTD_FAILED', `zstd-codec instance is unusable: ${this.#dead}`);
    try {
      return call();
    } catch (err) {
      this.#dead = String(err);
      throw new MirrorboxError('ZSTD_FAILED', `zstd-codec aborted: ${this.#dead}`);
    }
  }

  /** Compresses into a new Uint8Array. */
  compress(src: Uint8Array, level: number = zstdLevelDefault): Uint8Array {
    return this.compressWith(src, level, (out) => out.slice());
  }

  /** Decompresses a frame of at most maxOutputBytes into a new Uint8Array. */
  decompress(src: Uint8Array, maxOutputBytes: number): Uint8Array {
    return this.decompressWith(src, maxOutputBytes, (out) => out.slice());
  }
}
