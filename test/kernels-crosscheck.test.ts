import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import {
  chacha20poly1305Open,
  chacha20poly1305Seal,
  crc32c,
  crc32cCombine,
  KernelInstance,
  lz4CompressBlock,
  lz4DecompressBlock,
  xchacha20poly1305Open,
  xchacha20poly1305Seal,
} from '../src/kernels/index.js';

// Cross-checks against independent implementations (dev dependencies only): sse4_crc32 and
// @node-rs/crc32 for CRC32C, node:crypto (OpenSSL) for ChaCha20-Poly1305, lz4-napi (lz4_flex)
// for LZ4 in both directions. Every length 0..4096 plus random large sizes.

const require = createRequire(import.meta.url);
const sse4 = require('sse4_crc32') as { calculate(data: Buffer, initial?: number): number };
const nodeRs = require('@node-rs/crc32') as { crc32c(data: Buffer, initial?: number): number };
const lz4napi = require('lz4-napi') as { compressSync(data: Buffer): Buffer; uncompressSync(data: Buffer): Buffer };

const lengthMax = 4096;
/** Fixed sizes plus three random ones per run (a failure message names the size). */
const largeSizes = [65536 + 7, 1024 * 1024 - 3, 3 * 1024 * 1024 + 11, ...Array.from({ length: 3 }, () => 4097 + Math.floor(Math.random() * 4 * 1024 * 1024))];

/** Data with a mix of runs, repeats and noise, so LZ4 finds matches of every kind. */
function compressible(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed * 2654435761 + 1;
  const rand = (): number => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x >>> 8;
  };
  let i = 0;
  while (i < length) {
    const kind = rand() % 4;
    const run = 1 + (rand() % 64);
    for (let j = 0; j < run && i < length; j++, i++) {
      if (kind === 0) out[i] = rand() & 0xff;
      else if (kind === 1) out[i] = 0x41 + (j % 3);
      else if (kind === 2 && i >= 300) out[i] = out[i - 1 - (rand() % 300)]!;
      else out[i] = 0x20 + (i % 17);
    }
  }
  return out;
}

test('CRC32C equals sse4_crc32 and @node-rs/crc32 for every length 0..4096 and large sizes', () => {
  const source = randomBytes(lengthMax + 64);
  for (let length = 0; length <= lengthMax; length++) {
    const offset = length % 13; // varying alignment
    const data = source.subarray(offset, offset + length);
    const ours = crc32c(data);
    assert.equal(ours, sse4.calculate(data) >>> 0, `length ${length} vs sse4_crc32`);
    assert.equal(ours, nodeRs.crc32c(data) >>> 0, `length ${length} vs @node-rs/crc32`);
  }
  for (const size of largeSizes) {
    const data = randomBytes(size);
    assert.equal(crc32c(data), sse4.calculate(data) >>> 0, `size ${size}`);
  }
});

test('CRC32C chains through seeds and combines chunks checksummed apart', () => {
  for (let round = 0; round < 200; round++) {
    const data = randomBytes(1 + Math.floor(Math.random() * 20000));
    const cut = Math.floor(Math.random() * (data.length + 1));
    const a = data.subarray(0, cut);
    const b = data.subarray(cut);
    const whole = sse4.calculate(data) >>> 0;
    assert.equal(crc32c(b, crc32c(a)), whole, 'seed chaining');
    assert.equal(crc32cCombine(crc32c(a), crc32c(b), b.length), whole, `combine at ${cut}/${data.length}`);
    assert.equal(nodeRs.crc32c(b, crc32c(a)) >>> 0, whole, 'our seed convention matches @node-rs/crc32');
  }
  assert.equal(crc32cCombine(0xdeadbeef, 0, 0), 0xdeadbeef);
});

test('CRC32C combine is right for B of 512 MiB and more (8 x length past 2^32 bits)', () => {
  // B is all zeros, fed to sse4_crc32 chunk by chunk, so no buffer of that size is needed.
  const chunk = Buffer.alloc(16 * 1024 * 1024);
  const a = randomBytes(100);
  const crcA = crc32c(a);
  let crcB = 0; // crc32c(B so far)
  let whole = crcA; // crc32c(A ++ B so far)
  let fed = 0;
  for (const lengthB of [2 ** 29 - 1, 2 ** 29 + 17, 2 ** 32 + 3]) {
    while (fed < lengthB) {
      const piece = chunk.subarray(0, Math.min(chunk.length, lengthB - fed));
      crcB = sse4.calculate(piece, crcB) >>> 0;
      whole = sse4.calculate(piece, whole) >>> 0;
      fed += piece.length;
    }
    assert.equal(crc32cCombine(crcA, crcB, lengthB), whole, `combine over ${lengthB} bytes`);
  }
});

test('CRC32C zero-copy: crc32cAt over a region equals the copying API', () => {
  const k = new KernelInstance({ memoryBytes: 4 * 1024 * 1024 });
  const region = k.reserve(1024 * 1024);
  const data = randomBytes(region.sizeBytes);
  region.view.set(data);
  assert.equal(k.crc32cAt(region.ptr, region.sizeBytes), crc32c(data));
  assert.equal(k.crc32cAt(region.ptr + 3, 1000, 0x12345678), crc32c(data.subarray(3, 1003), 0x12345678));
});

function nodeSeal(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

function nodeOpen(key: Buffer, nonce: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  decipher.setAAD(aad, { plaintextLength: sealed.length - 16 });
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
}

test('ChaCha20-Poly1305 output is identical to node:crypto for every length 0..4096 and large sizes', () => {
  const key = randomBytes(32);
  const source = randomBytes(lengthMax);
  for (let length = 0; length <= lengthMax; length++) {
    const nonce = randomBytes(12);
    const aad = source.subarray(0, length % 41);
    const plaintext = source.subarray(0, length);
    const ours = Buffer.from(chacha20poly1305Seal(key, nonce, plaintext, aad));
    assert.ok(ours.equals(nodeSeal(key, nonce, plaintext, aad)), `length ${length}: ciphertext and tag`);
    assert.ok(nodeOpen(key, nonce, ours, aad).equals(plaintext), `length ${length}: node opens ours`);
    assert.ok(Buffer.from(chacha20poly1305Open(key, nonce, ours, aad)).equals(plaintext), `length ${length}: we open ours`);
  }
  for (const size of largeSizes) {
    const nonce = randomBytes(12);
    const plaintext = randomBytes(size);
    const theirs = nodeSeal(key, nonce, plaintext, Buffer.alloc(0));
    assert.ok(Buffer.from(chacha20poly1305Seal(key, nonce, plaintext)).equals(theirs), `size ${size}`);
    assert.ok(Buffer.from(chacha20poly1305Open(key, nonce, theirs)).equals(plaintext), `size ${size}: we open node's`);
  }
});

test('XChaCha20-Poly1305 equals ChaCha20-Poly1305 (node:crypto) under the HChaCha20 subkey', () => {
  const k = new KernelInstance({ memoryBytes: 2 * 1024 * 1024 });
  const keyRegion = k.reserve(32);
  const nonceRegion = k.reserve(16);
  const subkeyRegion = k.reserve(32);
  for (let round = 0; round < 300; round++) {
    const key = randomBytes(32);
    const nonce = randomBytes(24);
    const plaintext = randomBytes(Math.floor(Math.random() * 3000));
    const aad = randomBytes(round % 20);
    keyRegion.view.set(key);
    nonceRegion.view.set(nonce.subarray(0, 16));
    k.exports.hchacha20(keyRegion.ptr, nonceRegion.ptr, subkeyRegion.ptr);
    const subkey = Buffer.from(subkeyRegion.view);
    const innerNonce = Buffer.concat([Buffer.alloc(4), nonce.subarray(16)]);
    const ours = Buffer.from(xchacha20poly1305Seal(key, nonce, plaintext, aad));
    assert.ok(ours.equals(nodeSeal(subkey, innerNonce, plaintext, aad)), `round ${round}`);
    assert.ok(Buffer.from(xchacha20poly1305Open(key, nonce, ours, aad)).equals(plaintext));
  }
});

/** lz4-napi's compressSync/uncompressSync carry a 4-byte little-endian size before the block. */
function withSizePrefix(block: Uint8Array, size: number): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(size);
  return Buffer.concat([prefix, block]);
}

test('LZ4 blocks interoperate with lz4-napi both ways for every length 0..4096 and large sizes', () => {
  const check = (data: Buffer, label: string): void => {
    const ours = lz4CompressBlock(data);
    assert.ok(lz4napi.uncompressSync(withSizePrefix(ours, data.length)).equals(data), `${label}: lz4-napi decodes ours`);
    assert.ok(Buffer.from(lz4DecompressBlock(ours, data.length)).equals(data), `${label}: we decode ours`);
    const theirs = lz4napi.compressSync(data).subarray(4);
    assert.ok(Buffer.from(lz4DecompressBlock(theirs, data.length)).equals(data), `${label}: we decode lz4-napi's`);
  };
  for (let length = 0; length <= lengthMax; length++) {
    check(compressible(length, length), `compressible length ${length}`);
    if (length % 16 === 0) check(randomBytes(length), `random length ${length}`);
  }
  for (const size of largeSizes) {
    check(compressible(size, size), `compressible size ${size}`);
    check(randomBytes(size), `random size ${size}`);
    check(Buffer.alloc(size, 0x61), `one-byte run of ${size}`);
  }
});

test('LZ4 compresses text about as well as lz4-napi', () => {
  const text = Buffer.from(Array.from({ length: 4000 }, (_, i) => `line ${i % 97}: the quick brown fox ${i % 13}\n`).join(''));
  const ours = lz4CompressBlock(text).length;
  const theirs = lz4napi.compressSync(text).length - 4;
  assert.ok(ours < text.length / 4, `ratio ${text.length / ours}`);
  assert.ok(ours <= theirs * 1.1, `ours ${ours} bytes vs lz4-napi ${theirs}`);
});
