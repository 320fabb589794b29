// The kernels module: one wasm instance per thread holds every kernel over one linear memory,
// so a frame is checksummed, compressed and encrypted without leaving wasm memory.
// The memory is imported (shared, sized up front by the loader, never grown); the loader
// places its arena above `heapBase()`. Nothing here allocates.

export { crc32c, crc32cCombine, crc32cFinish, crc32cStart, crc32cUpdate } from './crc32c';
export { chacha20Block, chacha20Xor, hchacha20 } from './chacha20';
export { poly1305Mac, poly1305Mac44 } from './poly1305';
export {
  chacha20poly1305Open,
  chacha20poly1305Seal,
  xchacha20poly1305Open,
  xchacha20poly1305Seal,
} from './aead';
export { lz4Compress, lz4CompressBound, lz4Decompress } from './lz4';

/** Alignment of the first arena byte (a cache line). */
const ARENA_ALIGN_BYTES: usize = 64;

/** The first byte above the module's static data, where the loader's arena starts. */
export function heapBase(): usize {
  return (__heap_base + ARENA_ALIGN_BYTES - 1) & ~(ARENA_ALIGN_BYTES - 1);
}
