/**
 * mirrorbox/kernels: the wasm kernels of the mirror stream and the frame pipeline.
 * See src/kernels/README.md (design) and src/kernels/FRAME.md (sealed frame format).
 */
export {
  aadBytesMax,
  chacha20poly1305Open,
  chacha20poly1305Seal,
  crc32c,
  crc32cCombine,
  defaultKernels,
  keyBytes,
  lz4CompressBlock,
  lz4CompressBound,
  lz4DecompressBlock,
  messageBytesMax,
  nonceBytes,
  tagBytes,
  xchacha20poly1305Open,
  xchacha20poly1305Seal,
  xnonceBytes,
} from './api.js';
export {
  compressionSavingBytesMin,
  compressionSavingShift,
  decodeFrameHeader,
  encodeFrameHeader,
  FrameCodec,
  frameBytesMaxDefault,
  frameBytesOf,
  frameHeaderBytes,
  frameOverheadBytes,
  frameVersion,
  NonceSequence,
  sealedFrameBytesMax,
  type FrameCodecOptions,
  type FrameHeader,
} from './frame.js';
export {
  cipherIds,
  cipherNameOf,
  codecIds,
  codecNameOf,
  nonceBytesOf,
  parseCipherName,
  parseCodecName,
  type CipherId,
  type CipherName,
  type CodecId,
  type CodecName,
} from './ids.js';
export { KernelPool, type KernelPoolOptions, type KernelPoolStats } from './pool.js';
export { KernelInstance, type KernelExports, type KernelInstanceOptions, type Region } from './wasm.js';
export { ZstdContext, zstdLevelDefault, zstdLevelMax, zstdLevelMin, type ZstdContextOptions } from './zstd.js';
