import assert from 'node:assert/strict';
import { MirrorboxError } from '../util/errors.js';
import {
  copyOut,
  KernelInstance,
  keyBytes,
  lz4CompressBound,
  nonceBytes,
  regionOverheadBytes,
  staticDataBytesMax,
  tagBytes,
  xnonceBytes,
  type Region,
} from './wasm.js';

/**
 * The typed one-shot API: each call copies its input into this thread's kernel memory, runs
 * the kernel there and copies the result out into a new Uint8Array. For zero-copy use, take
 * `defaultKernels()` (or your own KernelInstance) and call its *At methods on regions.
 */

/** Largest message the one-shot calls accept (bigger inputs: CRC is chunked, the others refuse). */
export const messageBytesMax = 16 * 1024 * 1024;
/** Largest additional authenticated data. */
export const aadBytesMax = 64 * 1024;
export { keyBytes, nonceBytes, tagBytes, xnonceBytes };

interface Scratch {
  kernels: KernelInstance;
  key: Region;
  nonce: Region;
  aad: Region;
  /** Plaintext / ciphertext (+ tag) / uncompressed data. */
  a: Region;
  /** Compressed data. */
  b: Region;
}

let scratch: Scratch | undefined;

function getScratch(): Scratch {
  if (scratch === undefined) {
    const regionCount = 5;
    const memoryBytes =
      staticDataBytesMax + regionCount * regionOverheadBytes + keyBytes + xnonceBytes + aadBytesMax +
      messageBytesMax + tagBytes + lz4CompressBound(messageBytesMax);
    const kernels = new KernelInstance({ memoryBytes });
    scratch = {
      kernels,
      key: kernels.reserve(keyBytes),
      nonce: kernels.reserve(xnonceBytes),
      aad: kernels.reserve(aadBytesMax),
      a: kernels.reserve(messageBytesMax + tagBytes),
      b: kernels.reserve(lz4CompressBound(messageBytesMax)),
    };
  }
  return scratch;
}

/** This thread's kernel instance behind the one-shot API (created on first use). */
export function defaultKernels(): KernelInstance {
  return getScratch().kernels;
}

function checkLength(what: string, length: number, max: number): void {
  if (length > max) throw new MirrorboxError('TOO_LARGE', `${what} of ${length} bytes exceeds the ${max} bytes allowed`);
}

function checkBytes(what: string, value: Uint8Array, length: number): void {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new MirrorboxError('BAD_ARGUMENT', `${what} must be ${length} bytes, got ${value instanceof Uint8Array ? value.length : typeof value}`);
  }
}

// ---- CRC32C ----

/**
 * CRC32C (Castagnoli) of `data`. Pass a previous result as `seed` to continue it over the
 * next chunk: crc32c(b, crc32c(a)) === crc32c(a ++ b).
 */
export function crc32c(data: Uint8Array, seed = 0): number {
  const s = getScratch();
  let crc = seed >>> 0;
  let offset = 0;
  do {
    const chunk = data.subarray(offset, offset + s.a.sizeBytes);
    s.a.view.set(chunk);
    crc = s.kernels.crc32cAt(s.a.ptr, chunk.length, crc);
    offset += chunk.length;
  } while (offset < data.length);
  return crc;
}

/** CRC32C of A ++ B from crc32c(A), crc32c(B) and B's length (chunks checksummed in parallel). */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  assert.ok(Number.isSafeInteger(lengthB) && lengthB >= 0, 'lengthB must be a byte count');
  return getScratch().kernels.exports.crc32cCombine(crcA >>> 0, crcB >>> 0, BigInt(lengthB)) >>> 0;
}

// ---- AEAD ----

function aeadSetup(s: Scratch, key: Uint8Array, nonce: Uint8Array, extended: boolean, aad: Uint8Array | undefined, dataLength: number): number {
  checkBytes('key', key, keyBytes);
  checkBytes('nonce', nonce, extended ? xnonceBytes : nonceBytes);
  const aadLength = aad?.length ?? 0;
  checkLength('AAD', aadLength, aadBytesMax);
  checkLength('message', dataLength, messageBytesMax);
  s.key.view.set(key);
  s.nonce.view.set(nonce);
  if (aad !== undefined) s.aad.view.set(aad);
  return aadLength;
}

function seal(extended: boolean, key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  const s = getScratch();
  const aadLength = aeadSetup(s, key, nonce, extended, aad, plaintext.length);
  s.a.view.set(plaintext);
  const tagPtr = s.a.ptr + plaintext.length;
  s.kernels.sealAt(extended, s.key.ptr, s.nonce.ptr, s.aad.ptr, aadLength, s.a.ptr, plaintext.length, tagPtr);
  return copyOut(s.a.view.subarray(0, plaintext.length + tagBytes));
}

function open(extended: boolean, key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array {
  const s = getScratch();
  if (sealed.length < tagBytes) {
    throw new MirrorboxError('AUTH_FAILED', `authentication failed: ${sealed.length} bytes is shorter than the ${tagBytes}-byte tag`);
  }
  const dataLength = sealed.length - tagBytes;
  const aadLength = aeadSetup(s, key, nonce, extended, aad, dataLength);
  s.a.view.set(sealed);
  s.kernels.openAt(extended, s.key.ptr, s.nonce.ptr, s.aad.ptr, aadLength, s.a.ptr, dataLength, s.a.ptr + dataLength);
  return copyOut(s.a.view.subarray(0, dataLength));
}

/** ChaCha20-Poly1305 (RFC 8439): ciphertext followed by the 16-byte tag. */
export function chacha20poly1305Seal(key: Uint8Array, nonce12: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  return seal(false, key, nonce12, plaintext, aad);
}

/** Opens ciphertext+tag; throws MirrorboxError AUTH_FAILED (and returns nothing) on any mismatch. */
export function chacha20poly1305Open(key: Uint8Array, nonce12: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array {
  return open(false, key, nonce12, sealed, aad);
}

/** XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) with a 24-byte nonce, safe to pick at random. */
export function xchacha20poly1305Seal(key: Uint8Array, nonce24: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
  return seal(true, key, nonce24, plaintext, aad);
}

/** Opens an XChaCha20-Poly1305 message; throws AUTH_FAILED on any mismatch. */
export function xchacha20poly1305Open(key: Uint8Array, nonce24: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array {
  return open(true, key, nonce24, sealed, aad);
}

// ---- LZ4 ----

export { lz4CompressBound };

/** Compresses `src` as one LZ4 block (no frame, no size prefix). */
export function lz4CompressBlock(src: Uint8Array): Uint8Array {
  const s = getScratch();
  checkLength('LZ4 input', src.length, messageBytesMax);
  s.a.view.set(src);
  const size = s.kernels.lz4CompressAt(s.a.ptr, src.length, s.b.ptr, s.b.sizeBytes);
  assert.ok(size > 0, 'a destination of lz4CompressBound bytes always fits');
  return copyOut(s.b.view.subarray(0, size));
}

/**
 * Decompresses one LZ4 block of at most maxOutputBytes. Throws MirrorboxError CORRUPT_INPUT
 * on a truncated, corrupt or length-lying block (never reads or writes out of bounds).
 */
export function lz4DecompressBlock(src: Uint8Array, maxOutputBytes: number): Uint8Array {
  const s = getScratch();
  assert.ok(Number.isSafeInteger(maxOutputBytes) && maxOutputBytes >= 0, 'maxOutputBytes must be a byte count');
  checkLength('LZ4 output limit', maxOutputBytes, messageBytesMax);
  if (src.length > s.b.sizeBytes) {
    throw new MirrorboxError('CORRUPT_INPUT', `LZ4 block of ${src.length} bytes is larger than any block of ${messageBytesMax} bytes`);
  }
  s.b.view.set(src);
  const size = s.kernels.lz4DecompressAt(s.b.ptr, src.length, s.a.ptr, maxOutputBytes);
  return copyOut(s.a.view.subarray(0, size));
}
