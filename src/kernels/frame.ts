import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MirrorboxError } from '../util/errors.js';
import { cipherIds, cipherNameOf, codecIds, codecNameOf, nonceBytesOf, type CipherName, type CodecName } from './ids.js';
import { copyOut, KernelInstance, keyBytes, lz4CompressBound, regionOverheadBytes, staticDataBytesMax, tagBytes, xnonceBytes, type Region } from './wasm.js';
import { checkZstdLevel, zstdLevelDefault, ZstdContext, zstdSizeBytesMax } from './zstd.js';

/**
 * The sealed frame: the unit the mirror link carries (format in FRAME.md, encoded and decoded
 * only here).
 *
 *   seal: CRC32C(plaintext) -> compress if it saves enough (else store raw) -> AEAD over
 *         [crc | payload] with the header as additional data.
 *   open: header checks -> AEAD verify + decrypt -> decompress to exactly the declared size
 *         -> CRC32C check. Every step that fails throws a MirrorboxError:
 *
 *   | step               | code              | typical cause                              |
 *   |--------------------|-------------------|--------------------------------------------|
 *   | header             | BAD_FRAME         | truncated, wrong magic/version/ids/lengths |
 *   | AEAD               | AUTH_FAILED       | bit flips, tampering, wrong key or AAD     |
 *   | zstd not loaded    | CODEC_UNAVAILABLE | opened with { zstd: false }                |
 *   | decompress         | CORRUPT_INPUT     | sender bug (authentic but undecodable)     |
 *   | CRC32C             | CHECKSUM_MISMATCH | sender/receiver bug or memory corruption   |
 *
 * Everything runs inside one KernelInstance's memory; the *At methods take offsets into it
 * (zero-copy), seal()/open() copy in and out.
 */

export const frameMagic0 = 0x4d; // 'M'
export const frameMagic1 = 0x46; // 'F'
export const frameVersion = 1;
export const frameHeaderBytes = 16;
export const frameTagBytes = tagBytes;
/** The CRC32C of the plaintext at the start of the encrypted body. */
export const frameCrcBytes = 4;
export const frameBytesMaxDefault = 1024 * 1024;
/** Hard ceiling for frameBytesMax (the length fields are u32; keep well inside wasm memory). */
export const frameBytesMaxLimit = 256 * 1024 * 1024;
/** Largest caller AAD (not carried in the frame; both ends supply it). */
export const frameAadBytesMax = 4096;
/**
 * Compression is kept only when it saves at least 1/2^shift of the plaintext (3 %) and at
 * least minimumSavingBytes: smaller gains do not pay for the receiver's decompression.
 */
export const compressionSavingShift = 5;
export const compressionSavingBytesMin = 64;

export interface FrameHeader {
  version: number;
  codec: CodecName;
  cipher: CipherName;
  /** Plaintext length before compression. */
  plaintextBytes: number;
  /** Encrypted body length: 4 (CRC) + payload, without the tag. */
  bodyBytes: number;
}

/** Header + nonce + tag + CRC: what a frame adds to a payload. */
export function frameOverheadBytes(cipher: CipherName): number {
  return frameHeaderBytes + nonceBytesOf(cipher) + frameCrcBytes + frameTagBytes;
}

/** The largest sealed frame for plaintexts of up to frameBytesMax (stored raw at worst). */
export function sealedFrameBytesMax(frameBytesMax: number, cipher: CipherName = 'xchacha20-poly1305'): number {
  return frameBytesMax + frameOverheadBytes(cipher);
}

/** Writes the 16-byte header at bytes[offset..]. */
export function encodeFrameHeader(bytes: Uint8Array, offset: number, header: FrameHeader): void {
  assert.ok(header.plaintextBytes >= 0 && header.plaintextBytes <= 0xffffffff && header.bodyBytes >= frameCrcBytes && header.bodyBytes <= 0xffffffff);
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, frameHeaderBytes);
  view.setUint8(0, frameMagic0);
  view.setUint8(1, frameMagic1);
  view.setUint8(2, header.version);
  view.setUint8(3, codecIds[header.codec]);
  view.setUint8(4, cipherIds[header.cipher]);
  view.setUint8(5, 0); // flags
  view.setUint16(6, 0, true); // reserved
  view.setUint32(8, header.plaintextBytes, true);
  view.setUint32(12, header.bodyBytes, true);
}

/** The total frame length a header announces (for reading frames off a stream). */
export function frameBytesOf(header: FrameHeader): number {
  return frameHeaderBytes + nonceBytesOf(header.cipher) + header.bodyBytes + frameTagBytes;
}

function badFrame(message: string): MirrorboxError {
  return new MirrorboxError('BAD_FRAME', `bad frame: ${message}`);
}

/**
 * Parses and checks the header of a frame. `frameLength` is the length of the whole frame
 * when known (then it must match exactly), or undefined when only the header has arrived.
 */
export function decodeFrameHeader(bytes: Uint8Array, offset: number, frameLength: number | undefined, frameBytesMax: number): FrameHeader {
  if (bytes.length - offset < frameHeaderBytes || (frameLength !== undefined && frameLength < frameHeaderBytes)) {
    throw badFrame(`${frameLength ?? bytes.length - offset} bytes is shorter than the ${frameHeaderBytes}-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, frameHeaderBytes);
  if (view.getUint8(0) !== frameMagic0 || view.getUint8(1) !== frameMagic1) throw badFrame('wrong magic (not a mirrorbox frame)');
  const version = view.getUint8(2);
  if (version !== frameVersion) throw badFrame(`version ${version} is not supported (this build reads version ${frameVersion})`);
  const codec = codecNameOf(view.getUint8(3));
  if (codec === undefined) throw badFrame(`unknown codec id ${view.getUint8(3)}`);
  const cipher = cipherNameOf(view.getUint8(4));
  if (cipher === undefined) throw badFrame(`unknown cipher id ${view.getUint8(4)}`);
  if (view.getUint8(5) !== 0 || view.getUint16(6, true) !== 0) throw badFrame('reserved bytes are not zero');
  const plaintextBytes = view.getUint32(8, true);
  const bodyBytes = view.getUint32(12, true);
  if (plaintextBytes > frameBytesMax) throw badFrame(`plaintext of ${plaintextBytes} bytes exceeds the ${frameBytesMax} allowed`);
  if (bodyBytes < frameCrcBytes) throw badFrame(`body of ${bodyBytes} bytes cannot hold the CRC`);
  const payloadBytesMax = Math.max(plaintextBytes, codec === 'raw' ? 0 : lz4CompressBound(plaintextBytes));
  if (bodyBytes - frameCrcBytes > payloadBytesMax) throw badFrame(`body of ${bodyBytes} bytes is too large for ${plaintextBytes} bytes of plaintext`);
  const header: FrameHeader = { version, codec, cipher, plaintextBytes, bodyBytes };
  if (frameLength !== undefined && frameBytesOf(header) !== frameLength) {
    throw badFrame(`header announces ${frameBytesOf(header)} bytes, the frame has ${frameLength}`);
  }
  return header;
}

/**
 * Nonces for one sealer: a random prefix (4 bytes for ChaCha20, 16 for XChaCha20) and a
 * 64-bit little-endian counter. The counter is taken in submission order (the pool takes it
 * on the main thread), so no two frames of this sequence share a nonce. With ChaCha20 the
 * 32-bit prefix alone does not keep two sequences under the same key apart: use a fresh key
 * per sequence, or XChaCha20 (128 random bits).
 */
export class NonceSequence {
  readonly cipher: CipherName;
  readonly prefix: Uint8Array;
  #counter: number;

  constructor(cipher: CipherName, prefix?: Uint8Array, firstCounter = 0) {
    const prefixBytes = nonceBytesOf(cipher) - 8;
    this.cipher = cipher;
    this.prefix = prefix ?? randomBytes(prefixBytes);
    assert.equal(this.prefix.length, prefixBytes, 'nonce prefix length');
    assert.ok(Number.isSafeInteger(firstCounter) && firstCounter >= 0);
    this.#counter = firstCounter;
  }

  /** Reserves the next counter value. */
  take(): number {
    if (this.#counter >= Number.MAX_SAFE_INTEGER) throw new MirrorboxError('NONCE_EXHAUSTED', 'nonce counter exhausted; rekey');
    return this.#counter++;
  }

  /** Writes prefix || counter (u64 LE) at bytes[offset..]. */
  write(bytes: Uint8Array, offset: number, counter: number): void {
    bytes.set(this.prefix, offset);
    const at = offset + this.prefix.length;
    const low = counter % 0x100000000;
    const high = Math.floor(counter / 0x100000000);
    for (let i = 0; i < 4; i++) {
      bytes[at + i] = (low >>> (8 * i)) & 0xff;
      bytes[at + 4 + i] = (high >>> (8 * i)) & 0xff;
    }
  }
}

export interface FrameCodecOptions {
  /** 32-byte key. */
  key: Uint8Array;
  /** AEAD for sealing (opening follows the frame). Default xchacha20-poly1305. */
  cipher?: CipherName;
  /** Compressor for sealing (opening follows the frame). Default lz4. */
  codec?: CodecName;
  zstdLevel?: number;
  /** Largest plaintext per frame. Default 1 MiB. */
  frameBytesMax?: number;
  /** Nonce source for sealing; default a fresh random prefix. */
  nonces?: NonceSequence;
  /**
   * Load zstd (needed to seal or open zstd frames). Default: when frameBytesMax <= 2 MiB
   * (zstd-codec's fixed heap holds no more).
   */
  zstd?: boolean;
  /** Reserve input/output regions for seal()/open() (off in pool workers, which use slots). */
  ioRegions?: boolean;
  /** Extra bytes of kernel memory to leave free for the caller's own regions. */
  extraMemoryBytes?: number;
  /** Run in this thread's existing instance instead of a new one (its free space must fit). */
  kernels?: KernelInstance;
}

/** Throws BAD_ARGUMENT unless `key` is a key for the frame AEAD. */
export function checkFrameKey(key: unknown): void {
  if (!(key instanceof Uint8Array) || key.length !== keyBytes) {
    throw new MirrorboxError('BAD_ARGUMENT', `frame key must be ${keyBytes} bytes`);
  }
}

/** Kernel memory a FrameCodec needs for the given options. */
export function frameCodecMemoryBytes(frameBytesMax: number, ioRegions: boolean, extraMemoryBytes: number): number {
  const sealedMax = sealedFrameBytesMax(frameBytesMax);
  const own = keyBytes + frameHeaderBytes + xnonceBytes + frameAadBytesMax + 3 * regionOverheadBytes;
  const io = ioRegions ? 2 * (sealedMax + regionOverheadBytes) : 0;
  return staticDataBytesMax + own + io + extraMemoryBytes;
}

export class FrameCodec {
  readonly kernels: KernelInstance;
  readonly cipher: CipherName;
  readonly codec: CodecName;
  readonly zstdLevel: number;
  readonly frameBytesMax: number;
  readonly nonces: NonceSequence;
  readonly #zstd: ZstdContext | undefined;
  readonly #key: Region;
  /** Header copy + caller AAD, when the caller passes AAD. */
  readonly #aad: Region;
  readonly #input: Region | undefined;
  readonly #output: Region | undefined;

  private constructor(options: FrameCodecOptions, zstd: ZstdContext | undefined) {
    this.cipher = options.cipher ?? 'xchacha20-poly1305';
    this.codec = options.codec ?? 'lz4';
    this.zstdLevel = options.zstdLevel ?? zstdLevelDefault;
    this.frameBytesMax = options.frameBytesMax ?? frameBytesMaxDefault;
    if (!Number.isSafeInteger(this.frameBytesMax) || this.frameBytesMax < 1 || this.frameBytesMax > frameBytesMaxLimit) {
      throw new MirrorboxError('BAD_ARGUMENT', `frameBytesMax must be 1..${frameBytesMaxLimit}, got ${this.frameBytesMax}`);
    }
    checkFrameKey(options.key);
    if (this.codec === 'zstd' && zstd === undefined) throw new MirrorboxError('BAD_ARGUMENT', 'codec zstd needs zstd loaded ({ zstd: true })');
    checkZstdLevel(this.zstdLevel);
    this.nonces = options.nonces ?? new NonceSequence(this.cipher);
    assert.equal(this.nonces.cipher, this.cipher, 'nonce sequence cipher');
    this.#zstd = zstd;
    const ioRegions = options.ioRegions ?? true;
    this.kernels =
      options.kernels ??
      new KernelInstance({ memoryBytes: frameCodecMemoryBytes(this.frameBytesMax, ioRegions, options.extraMemoryBytes ?? 0) });
    this.#key = this.kernels.reserve(keyBytes);
    this.#key.view.set(options.key);
    this.#aad = this.kernels.reserve(frameHeaderBytes + xnonceBytes + frameAadBytesMax);
    const sealedMax = sealedFrameBytesMax(this.frameBytesMax);
    this.#input = ioRegions ? this.kernels.reserve(sealedMax) : undefined;
    this.#output = ioRegions ? this.kernels.reserve(sealedMax) : undefined;
  }

  static async create(options: FrameCodecOptions): Promise<FrameCodec> {
    const frameBytesMax = options.frameBytesMax ?? frameBytesMaxDefault;
    const wantZstd = options.zstd ?? (frameBytesMax <= zstdSizeBytesMax || options.codec === 'zstd');
    const zstd = wantZstd ? await ZstdContext.create({ sizeBytesMax: frameBytesMax }) : undefined;
    return new FrameCodec(options, zstd);
  }

  /** The largest frame seal() can produce. */
  get sealedBytesMax(): number {
    return sealedFrameBytesMax(this.frameBytesMax, this.cipher);
  }

  /** Region for zero-copy callers: write a plaintext (or a sealed frame) here, then sealInput/openInput. */
  get input(): Region {
    assert.ok(this.#input !== undefined, 'this FrameCodec has no io regions');
    return this.#input;
  }

  get output(): Region {
    assert.ok(this.#output !== undefined, 'this FrameCodec has no io regions');
    return this.#output;
  }

  /** Points the AEAD at header (+ caller AAD); returns [ptr, len]. */
  #additionalData(framePtr: number, headerAndNonceBytes: number, aad: Uint8Array | undefined): [number, number] {
    if (aad === undefined || aad.length === 0) return [framePtr, headerAndNonceBytes];
    if (aad.length > frameAadBytesMax) throw new MirrorboxError('TOO_LARGE', `AAD of ${aad.length} bytes exceeds ${frameAadBytesMax}`);
    const bytes = this.kernels.bytes;
    bytes.copyWithin(this.#aad.ptr, framePtr, framePtr + headerAndNonceBytes);
    bytes.set(aad, this.#aad.ptr + headerAndNonceBytes);
    return [this.#aad.ptr, headerAndNonceBytes + aad.length];
  }

  /**
   * Seals `len` plaintext bytes at `inPtr` into a frame at `outPtr` (capacity outCap) and
   * returns the frame length. `nonceCounter` defaults to the next of this codec's sequence.
   */
  sealAt(inPtr: number, len: number, outPtr: number, outCap: number, aad?: Uint8Array, nonceCounter?: number): number {
    const k = this.kernels;
    const bytes = k.bytes;
    if (len > this.frameBytesMax) throw new MirrorboxError('TOO_LARGE', `frame of ${len} bytes exceeds frameBytesMax ${this.frameBytesMax}`);
    assert.ok(outCap >= len + frameOverheadBytes(this.cipher), 'sealAt output capacity');
    k.checkRange(inPtr, len);
    k.checkRange(outPtr, outCap);
    const nonceBytes = nonceBytesOf(this.cipher);
    const noncePtr = outPtr + frameHeaderBytes;
    const bodyPtr = noncePtr + nonceBytes;
    const payloadPtr = bodyPtr + frameCrcBytes;
    this.nonces.write(bytes, noncePtr, nonceCounter ?? this.nonces.take());
    const crc = k.crc32cAt(inPtr, len);
    // Compress straight into the frame, with room only for a worthwhile result.
    const saving = Math.max(compressionSavingBytesMin, len >>> compressionSavingShift);
    const capacity = len - saving;
    let codec: CodecName = 'raw';
    let payloadBytes = len;
    if (capacity > 0 && this.codec === 'lz4') {
      const size = k.lz4CompressAt(inPtr, len, payloadPtr, capacity);
      if (size > 0) {
        codec = 'lz4';
        payloadBytes = size;
      }
    } else if (capacity > 0 && this.codec === 'zstd') {
      const size = this.#zstd!.compressWith(bytes.subarray(inPtr, inPtr + len), this.zstdLevel, (out) => {
        if (out.length > capacity) return 0;
        bytes.set(out, payloadPtr);
        return out.length;
      });
      if (size > 0) {
        codec = 'zstd';
        payloadBytes = size;
      }
    }
    if (codec === 'raw') bytes.copyWithin(payloadPtr, inPtr, inPtr + len);
    new DataView(bytes.buffer, bodyPtr, frameCrcBytes).setUint32(0, crc, true);
    const header: FrameHeader = { version: frameVersion, codec, cipher: this.cipher, plaintextBytes: len, bodyBytes: frameCrcBytes + payloadBytes };
    encodeFrameHeader(bytes, outPtr, header);
    const [aadPtr, aadLen] = this.#additionalData(outPtr, frameHeaderBytes + nonceBytes, aad);
    const tagPtr = bodyPtr + header.bodyBytes;
    k.sealAt(this.cipher === 'xchacha20-poly1305', this.#key.ptr, noncePtr, aadPtr, aadLen, bodyPtr, header.bodyBytes, tagPtr);
    return tagPtr + frameTagBytes - outPtr;
  }

  /**
   * Opens the frame of `len` bytes at `inPtr` (decrypting it in place) into `outPtr`
   * (capacity outCap >= its plaintext) and returns the plaintext length.
   */
  openAt(inPtr: number, len: number, outPtr: number, outCap: number, aad?: Uint8Array): number {
    const k = this.kernels;
    const bytes = k.bytes;
    k.checkRange(inPtr, len);
    const header = decodeFrameHeader(bytes, inPtr, len, this.frameBytesMax);
    assert.ok(outCap >= header.plaintextBytes, 'openAt output capacity');
    k.checkRange(outPtr, header.plaintextBytes);
    const nonceBytes = nonceBytesOf(header.cipher);
    const noncePtr = inPtr + frameHeaderBytes;
    const bodyPtr = noncePtr + nonceBytes;
    const [aadPtr, aadLen] = this.#additionalData(inPtr, frameHeaderBytes + nonceBytes, aad);
    const extended = header.cipher === 'xchacha20-poly1305';
    k.openAt(extended, this.#key.ptr, noncePtr, aadPtr, aadLen, bodyPtr, header.bodyBytes, bodyPtr + header.bodyBytes);
    // Authentic from here on: what fails now is a bug at the sender or here, not the link.
    const expectedCrc = new DataView(bytes.buffer, bodyPtr, frameCrcBytes).getUint32(0, true);
    const payloadPtr = bodyPtr + frameCrcBytes;
    const payloadBytes = header.bodyBytes - frameCrcBytes;
    const plaintextBytes = header.plaintextBytes;
    let decoded: number;
    switch (header.codec) {
      case 'raw':
        decoded = payloadBytes;
        if (payloadBytes === plaintextBytes) bytes.copyWithin(outPtr, payloadPtr, payloadPtr + payloadBytes);
        break;
      case 'lz4':
        decoded = k.lz4DecompressAt(payloadPtr, payloadBytes, outPtr, plaintextBytes);
        break;
      case 'zstd':
        if (this.#zstd === undefined) throw new MirrorboxError('CODEC_UNAVAILABLE', 'zstd frame, but this FrameCodec has no zstd (zstd: false, or frameBytesMax > 2 MiB)');
        decoded = this.#zstd.decompressWith(bytes.subarray(payloadPtr, payloadPtr + payloadBytes), plaintextBytes, (out) => {
          bytes.set(out, outPtr);
          return out.length;
        });
        break;
    }
    if (decoded !== plaintextBytes) {
      throw new MirrorboxError('CORRUPT_INPUT', `frame payload decodes to ${decoded} bytes, header says ${plaintextBytes}`);
    }
    const crc = k.crc32cAt(outPtr, plaintextBytes);
    if (crc !== expectedCrc) {
      throw new MirrorboxError('CHECKSUM_MISMATCH', `CRC32C of the opened frame is ${hex(crc)}, the sender's was ${hex(expectedCrc)}`);
    }
    return plaintextBytes;
  }

  /** Seals the plaintext already written to `input` (zero-copy in); returns a view of `output` valid until the next call. */
  sealInput(len: number, aad?: Uint8Array): Uint8Array {
    const size = this.sealAt(this.input.ptr, len, this.output.ptr, this.output.sizeBytes, aad);
    return this.output.view.subarray(0, size);
  }

  /** Opens the frame already written to `input`; returns a view of `output` valid until the next call. */
  openInput(len: number, aad?: Uint8Array): Uint8Array {
    const size = this.openAt(this.input.ptr, len, this.output.ptr, this.output.sizeBytes, aad);
    return this.output.view.subarray(0, size);
  }

  /** Seals a plaintext into a new frame. */
  seal(plaintext: Uint8Array, aad?: Uint8Array): Uint8Array {
    if (plaintext.length > this.frameBytesMax) {
      throw new MirrorboxError('TOO_LARGE', `frame of ${plaintext.length} bytes exceeds frameBytesMax ${this.frameBytesMax}`);
    }
    this.input.view.set(plaintext);
    return copyOut(this.sealInput(plaintext.length, aad));
  }

  /** Opens a frame into a new plaintext; throws BAD_FRAME, AUTH_FAILED, CORRUPT_INPUT or CHECKSUM_MISMATCH. */
  open(frame: Uint8Array, aad?: Uint8Array): Uint8Array {
    if (frame.length > this.input.sizeBytes) {
      throw new MirrorboxError('BAD_FRAME', `bad frame: ${frame.length} bytes is more than a frame of ${this.frameBytesMax} can be`);
    }
    this.input.view.set(frame);
    return copyOut(this.openInput(frame.length, aad));
  }
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}
