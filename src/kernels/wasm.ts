import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MirrorboxError } from '../util/errors.js';

/**
 * The thin loader: compiles dist/wasm/kernels.wasm once per thread and instantiates it over a
 * shared WebAssembly.Memory sized up front (initial = maximum, so it never grows and views
 * over it never detach). Each KernelInstance hands out fixed regions of that memory with a
 * bump allocator at setup time; hot paths then call the (pointer, length) exports with no
 * allocation and no copy beyond the ones the caller asks for.
 */

/** The exports of assembly/kernels.ts (pointers and lengths are byte offsets into memory). */
export interface KernelExports {
  heapBase(): number;
  crc32c(seed: number, ptr: number, len: number): number;
  crc32cStart(): number;
  crc32cUpdate(register: number, ptr: number, len: number): number;
  crc32cFinish(register: number): number;
  crc32cCombine(crcA: number, crcB: number, lenB: bigint): number;
  chacha20Block(key: number, counter: number, nonce: number, out: number): void;
  chacha20Xor(key: number, counter: number, nonce: number, src: number, dst: number, len: number): number;
  hchacha20(key: number, nonce16: number, out: number): void;
  poly1305Mac(key: number, m: number, len: number, out: number): void;
  poly1305Mac44(key: number, m: number, len: number, out: number): void;
  chacha20poly1305Seal(key: number, nonce: number, aad: number, aadLen: number, data: number, dataLen: number, tag: number): void;
  chacha20poly1305Open(key: number, nonce: number, aad: number, aadLen: number, data: number, dataLen: number, tag: number): number;
  xchacha20poly1305Seal(key: number, nonce: number, aad: number, aadLen: number, data: number, dataLen: number, tag: number): void;
  xchacha20poly1305Open(key: number, nonce: number, aad: number, aadLen: number, data: number, dataLen: number, tag: number): number;
  lz4Compress(src: number, srcLen: number, dst: number, dstCap: number): number;
  lz4CompressBound(n: number): number;
  lz4Decompress(src: number, srcLen: number, dst: number, dstCap: number): number;
}

export const wasmPageBytes = 65536;
/** Largest linear memory one instance may have (the module declares this maximum). */
export const memoryBytesMax = 16384 * wasmPageBytes;
/** Room for the module's static data (tables, ~50 KiB) below the arena. */
export const staticDataBytesMax = 1024 * 1024;
/** Alignment of every region (a cache line). */
const regionAlignBytes = 64;
/**
 * Slack after every region: the LZ4 kernels may read up to 16 bytes past a literal run and
 * the tail of the ChaCha kernel works in whole 16-byte lanes, always inside their own
 * bounds, but a region never ends flush against the next one or the end of memory.
 */
const regionSlackBytes = 64;
/** What a region may take beyond its size (slack and alignment); for sizing memories. */
export const regionOverheadBytes = regionSlackBytes + regionAlignBytes;

/** AEAD sizes the kernels work with (RFC 8439, draft-irtf-cfrg-xchacha). */
export const keyBytes = 32;
export const nonceBytes = 12;
/** XChaCha20-Poly1305 nonce. */
export const xnonceBytes = 24;
export const tagBytes = 16;

/** Codes of the kernels' negative results. */
const aeadAuthFailed = -1;
const lz4ErrorTruncated = -1;
const lz4ErrorOffset = -2;
const lz4ErrorOutput = -3;

/** The largest LZ4 output for `n` input bytes (same formula as the kernel). */
export function lz4CompressBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

let compiled: WebAssembly.Module | undefined;

/** The compiled kernels module (compiled on first use, then shared by every instance in the thread). */
export function kernelModule(): WebAssembly.Module {
  if (compiled === undefined) {
    const path = fileURLToPath(new URL('../../wasm/kernels.wasm', import.meta.url));
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      throw new MirrorboxError('KERNELS_MISSING', `wasm kernels not built (${path}); run npm run build:wasm`, { cause: err });
    }
    compiled = new WebAssembly.Module(bytes);
  }
  return compiled;
}

/** A fixed range of one instance's memory. */
export interface Region {
  readonly ptr: number;
  readonly sizeBytes: number;
  /** A view of the whole region (valid for the instance's lifetime: memory never grows). */
  readonly view: Uint8Array;
}

export interface KernelInstanceOptions {
  /** Total linear memory in bytes (rounded up to whole pages). */
  memoryBytes: number;
}

/**
 * One wasm instance and its memory. Regions are carved out once, at setup; there is no free.
 */
export class KernelInstance {
  readonly memory: WebAssembly.Memory;
  readonly exports: KernelExports;
  /** A view of the whole memory. */
  readonly bytes: Uint8Array;
  readonly memoryBytes: number;
  readonly heapBase: number;
  #next: number;

  constructor(options: KernelInstanceOptions) {
    const pages = Math.ceil(options.memoryBytes / wasmPageBytes);
    if (pages * wasmPageBytes > memoryBytesMax) {
      throw new MirrorboxError('TOO_LARGE', `kernel memory of ${options.memoryBytes} bytes exceeds the ${memoryBytesMax} the module allows`);
    }
    // One memory per instance: the module's static data (hash table, AEAD scratch) and the
    // bump allocator both start at fixed addresses, so two instances must never share one.
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const instance = new WebAssembly.Instance(kernelModule(), { env: { memory: this.memory } });
    this.exports = instance.exports as unknown as KernelExports;
    this.bytes = new Uint8Array(this.memory.buffer);
    this.memoryBytes = this.bytes.byteLength;
    this.heapBase = this.exports.heapBase();
    this.#next = this.heapBase;
    assert.ok(this.heapBase > 0 && this.heapBase <= staticDataBytesMax && this.heapBase < this.memoryBytes, 'static data must fit');
  }

  /** Bytes not yet given to a region. */
  get freeBytes(): number {
    return this.memoryBytes - this.#next;
  }

  /** Carves a region of `sizeBytes` out of the free memory; throws ARENA_EXHAUSTED when it does not fit. */
  reserve(sizeBytes: number): Region {
    assert.ok(Number.isSafeInteger(sizeBytes) && sizeBytes >= 0, 'region size must be a byte count');
    const ptr = this.#next;
    const end = ptr + sizeBytes + regionSlackBytes;
    const next = Math.ceil(end / regionAlignBytes) * regionAlignBytes;
    if (next > this.memoryBytes) {
      throw new MirrorboxError(
        'ARENA_EXHAUSTED',
        `kernel memory has ${this.freeBytes} bytes free, a region of ${sizeBytes} (+${regionSlackBytes} slack) does not fit`,
      );
    }
    this.#next = next;
    return { ptr, sizeBytes, view: this.bytes.subarray(ptr, ptr + sizeBytes) };
  }

  /** Asserts that [ptr, ptr + len) lies in the arena (above the static data, inside memory). */
  checkRange(ptr: number, len: number): void {
    assert.ok(
      Number.isInteger(ptr) && Number.isInteger(len) && len >= 0 && ptr >= this.heapBase && ptr + len <= this.memoryBytes,
      `range [${ptr}, ${ptr}+${len}) is outside the kernel arena`,
    );
  }

  // ---- zero-copy (pointer, length) API: data already sits in this instance's memory ----

  /** CRC32C of len bytes at ptr, continuing from the finished CRC `seed`. */
  crc32cAt(ptr: number, len: number, seed = 0): number {
    this.checkRange(ptr, len);
    return this.exports.crc32c(seed, ptr, len) >>> 0;
  }

  /** LZ4-compresses into dst; returns the compressed size, or 0 when it does not fit dstCap. */
  lz4CompressAt(src: number, srcLen: number, dst: number, dstCap: number): number {
    this.checkRange(src, srcLen);
    this.checkRange(dst, dstCap);
    return this.exports.lz4Compress(src, srcLen, dst, dstCap) >>> 0;
  }

  /** LZ4-decompresses into dst; returns the size, throws CORRUPT_INPUT on a malformed block. */
  lz4DecompressAt(src: number, srcLen: number, dst: number, dstCap: number): number {
    this.checkRange(src, srcLen);
    this.checkRange(dst, dstCap);
    const result = this.exports.lz4Decompress(src, srcLen, dst, dstCap);
    if (result < 0) throw lz4Error(result, dstCap);
    return result;
  }

  #checkAead(extended: boolean, keyPtr: number, noncePtr: number, aadPtr: number, aadLen: number, data: number, dataLen: number, tagPtr: number): void {
    this.checkRange(keyPtr, keyBytes);
    this.checkRange(noncePtr, extended ? xnonceBytes : nonceBytes);
    this.checkRange(aadPtr, aadLen);
    this.checkRange(data, dataLen);
    this.checkRange(tagPtr, tagBytes);
  }

  /**
   * AEAD seal in place: data (dataLen bytes) becomes ciphertext, the tag goes to tagPtr.
   * keyPtr: 32 bytes; noncePtr: 12 bytes (24 when extended, i.e. XChaCha20-Poly1305).
   */
  sealAt(extended: boolean, keyPtr: number, noncePtr: number, aadPtr: number, aadLen: number, data: number, dataLen: number, tagPtr: number): void {
    this.#checkAead(extended, keyPtr, noncePtr, aadPtr, aadLen, data, dataLen, tagPtr);
    const seal = extended ? this.exports.xchacha20poly1305Seal : this.exports.chacha20poly1305Seal;
    seal(keyPtr, noncePtr, aadPtr, aadLen, data, dataLen, tagPtr);
  }

  /** AEAD open in place; throws AUTH_FAILED (data left as ciphertext) when the tag is wrong. */
  openAt(extended: boolean, keyPtr: number, noncePtr: number, aadPtr: number, aadLen: number, data: number, dataLen: number, tagPtr: number): void {
    this.#checkAead(extended, keyPtr, noncePtr, aadPtr, aadLen, data, dataLen, tagPtr);
    const open = extended ? this.exports.xchacha20poly1305Open : this.exports.chacha20poly1305Open;
    if (open(keyPtr, noncePtr, aadPtr, aadLen, data, dataLen, tagPtr) === aeadAuthFailed) {
      throw new MirrorboxError('AUTH_FAILED', 'authentication failed: ciphertext, tag, AAD, nonce or key do not match');
    }
  }
}

/**
 * Copies bytes out of (shared) wasm memory into a new Buffer. Faster than slice() on a view
 * of a SharedArrayBuffer, which zero-fills a fresh ArrayBuffer first.
 */
export function copyOut(view: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(view.length);
  out.set(view);
  return out;
}

/** The typed error for a negative LZ4 decompressor result. */
function lz4Error(code: number, dstCap: number): MirrorboxError {
  switch (code) {
    case lz4ErrorTruncated:
      return new MirrorboxError('CORRUPT_INPUT', 'LZ4 block is truncated or malformed (input ends inside a sequence)');
    case lz4ErrorOffset:
      return new MirrorboxError('CORRUPT_INPUT', 'LZ4 block is corrupt (match offset points before the start of the output)');
    case lz4ErrorOutput:
      return new MirrorboxError('CORRUPT_INPUT', `LZ4 block decompresses to more than ${dstCap} bytes`);
    default:
      assert.fail(`unknown LZ4 result ${code}`);
  }
}
