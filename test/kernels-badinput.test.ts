import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  chacha20poly1305Open,
  chacha20poly1305Seal,
  KernelInstance,
  lz4CompressBlock,
  lz4DecompressBlock,
  xchacha20poly1305Open,
  xchacha20poly1305Seal,
} from '../src/kernels/index.js';
import { hasCode } from '../src/util/errors.js';

// Bad input: LZ4 blocks that are truncated, corrupt, length-lying or random must give a
// typed CORRUPT_INPUT and never touch memory outside their buffers; tampered AEAD messages
// must give AUTH_FAILED and no plaintext.

const fuzzRuns = 3000;
const text = Buffer.from(Array.from({ length: 3000 }, (_, i) => `block ${i % 101} of the mirror stream, sector ${i * 7}\n`).join(''));
const valid = Buffer.from(lz4CompressBlock(text));

/** Runs fn and asserts it either returns or throws MirrorboxError CORRUPT_INPUT (nothing else). */
function decodeOrCorrupt(fn: () => Uint8Array, maxOutputBytes: number): 'ok' | 'corrupt' {
  try {
    const out = fn();
    assert.ok(out.length <= maxOutputBytes, 'output within the limit');
    return 'ok';
  } catch (err) {
    if (hasCode(err, 'CORRUPT_INPUT')) return 'corrupt';
    throw err;
  }
}

function expectCorrupt(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => hasCode(err, 'CORRUPT_INPUT'), message);
}

test('LZ4: a truncated block is CORRUPT_INPUT, or (cut right after literals) a shorter prefix', () => {
  // A cut that lands exactly after a sequence's literals is itself a valid block (its last
  // sequence has no match); it decodes to a strict prefix, which the frame layer rejects
  // because the header's length differs.
  let corrupt = 0;
  for (let length = 0; length < valid.length; length++) {
    try {
      const out = Buffer.from(lz4DecompressBlock(valid.subarray(0, length), text.length));
      assert.ok(out.length < text.length && out.equals(text.subarray(0, out.length)), `prefix of ${length} bytes decodes to a prefix`);
    } catch (err) {
      assert.ok(hasCode(err, 'CORRUPT_INPUT'), `prefix of ${length} bytes: ${String(err)}`);
      corrupt++;
    }
  }
  assert.ok(corrupt > valid.length / 2, `${corrupt} of ${valid.length} truncations rejected`);
  assert.ok(Buffer.from(lz4DecompressBlock(valid, text.length)).equals(text));
});

test('LZ4: length-lying blocks and too small output limits are CORRUPT_INPUT', () => {
  expectCorrupt(() => lz4DecompressBlock(valid, text.length - 1), 'output one byte short');
  expectCorrupt(() => lz4DecompressBlock(valid, 0), 'no output room');
  // A literal run claiming 15 + 255 * 2 + 10 bytes, with only 3 present.
  expectCorrupt(() => lz4DecompressBlock(Buffer.from([0xf0, 0xff, 0xff, 0x0a, 1, 2, 3]), 4096), 'literal length beyond the input');
  // A match of 4 + 15 + 255 * 4000 bytes: far beyond the limit.
  const huge = Buffer.concat([Buffer.from([0x1f, 0x61, 0x01, 0x00]), Buffer.alloc(4000, 0xff), Buffer.from([0x00, 0x00])]);
  expectCorrupt(() => lz4DecompressBlock(huge, 65536), 'match length beyond the output limit');
  // Literal length bytes of 255 forever: rejected before the length could overflow.
  expectCorrupt(() => lz4DecompressBlock(Buffer.concat([Buffer.from([0xf0]), Buffer.alloc(100000, 0xff)]), 65536), 'endless length');
  // Offsets 0 and before the start of the output.
  expectCorrupt(() => lz4DecompressBlock(Buffer.from([0x10, 0x61, 0x00, 0x00, 0x00]), 4096), 'offset 0');
  expectCorrupt(() => lz4DecompressBlock(Buffer.from([0x10, 0x61, 0x02, 0x00, 0x00]), 4096), 'offset before the output');
  // A block ending right after a match (the last sequence must be literals only).
  expectCorrupt(() => lz4DecompressBlock(Buffer.from([0x10, 0x61, 0x01, 0x00]), 4096), 'ends with a match');
  expectCorrupt(() => lz4DecompressBlock(Buffer.alloc(0), 4096), 'empty block');
  assert.equal(lz4DecompressBlock(Buffer.from([0x00]), 0).length, 0, 'a lone empty token is the empty block');
});

test('LZ4: fuzzed random bytes and mutated blocks give data or CORRUPT_INPUT (fast-check)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 8192 }), (bytes, maxOutputBytes) => {
      decodeOrCorrupt(() => lz4DecompressBlock(bytes, maxOutputBytes), maxOutputBytes);
    }),
    { numRuns: fuzzRuns },
  );
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.nat(valid.length),
      (edits, cut) => {
        const mutated = Buffer.from(valid.subarray(0, Math.max(1, cut)));
        for (const [at, value] of edits) if (at < mutated.length) mutated[at] = value;
        decodeOrCorrupt(() => lz4DecompressBlock(mutated, text.length), text.length);
      },
    ),
    { numRuns: fuzzRuns },
  );
});

test('LZ4 zero-copy: no read past the input and no write past the output, even at the end of memory', () => {
  const memoryBytes = 1024 * 1024;
  const k = new KernelInstance({ memoryBytes });
  const middle = k.reserve(256 * 1024);
  const guardBytes = 64;
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), fc.integer({ min: 0, max: 16384 }), (bytes, capacity) => {
      // Input flush against the end of linear memory: any read past it traps (RuntimeError,
      // which is not a MirrorboxError and fails the property).
      const srcAtEnd = k.memoryBytes - bytes.length;
      k.bytes.set(bytes, srcAtEnd);
      const dst = middle.ptr + guardBytes;
      k.bytes.fill(0xa5, dst - guardBytes, dst);
      k.bytes.fill(0x5a, dst + capacity, dst + capacity + guardBytes);
      try {
        k.lz4DecompressAt(srcAtEnd, bytes.length, dst, capacity);
      } catch (err) {
        if (!hasCode(err, 'CORRUPT_INPUT')) throw err;
      }
      assert.ok(k.bytes.subarray(dst - guardBytes, dst).every((b) => b === 0xa5), 'nothing written before the output');
      assert.ok(k.bytes.subarray(dst + capacity, dst + capacity + guardBytes).every((b) => b === 0x5a), 'nothing written past the output');
      // Output flush against the end of memory: any write past it traps.
      const src = middle.ptr;
      k.bytes.set(bytes, src);
      try {
        k.lz4DecompressAt(src, bytes.length, k.memoryBytes - capacity, capacity);
      } catch (err) {
        if (!hasCode(err, 'CORRUPT_INPUT')) throw err;
      }
    }),
    { numRuns: fuzzRuns },
  );
  // Valid data decoded into exactly its size at the end of memory (wide copies must not spill).
  const plain = Buffer.concat([text.subarray(0, 5000), Buffer.alloc(3000, 7), randomBytes(500)]);
  const block = Buffer.from(lz4CompressBlock(plain));
  k.bytes.set(block, middle.ptr);
  const at = k.memoryBytes - plain.length;
  assert.equal(k.lz4DecompressAt(middle.ptr, block.length, at, plain.length), plain.length);
  assert.ok(Buffer.from(k.bytes.subarray(at)).equals(plain));
});

test('LZ4 compressor: a too small destination returns 0 and writes nothing past it', () => {
  const k = new KernelInstance({ memoryBytes: 1024 * 1024 });
  const src = k.reserve(text.length);
  src.view.set(text);
  const compressedBytes = k.lz4CompressAt(src.ptr, text.length, k.memoryBytes - 200000, 200000);
  assert.ok(compressedBytes > 0);
  for (const capacity of [0, 1, 100, compressedBytes - 1]) {
    assert.equal(k.lz4CompressAt(src.ptr, text.length, k.memoryBytes - capacity, capacity), 0, `capacity ${capacity}`);
  }
  assert.equal(k.lz4CompressAt(src.ptr, text.length, k.memoryBytes - compressedBytes, compressedBytes), compressedBytes);
  const random = randomBytes(70000);
  const r = k.reserve(random.length);
  r.view.set(random);
  assert.equal(k.lz4CompressAt(r.ptr, random.length, k.memoryBytes - random.length, random.length), 0, 'incompressible: gives up within the input size');
});

const expectAuthFailed = (fn: () => unknown, message: string): void => {
  assert.throws(fn, (err: unknown) => hasCode(err, 'AUTH_FAILED'), message);
};

for (const [name, seal, open, nonceBytes] of [
  ['ChaCha20-Poly1305', chacha20poly1305Seal, chacha20poly1305Open, 12],
  ['XChaCha20-Poly1305', xchacha20poly1305Seal, xchacha20poly1305Open, 24],
] as const) {
  test(`${name}: any tampered byte, AAD, nonce or key gives AUTH_FAILED`, () => {
    const key = randomBytes(32);
    const nonce = randomBytes(nonceBytes);
    const aad = Buffer.from('volume 7, block 4242');
    const plaintext = randomBytes(300);
    const sealed = Buffer.from(seal(key, nonce, plaintext, aad));
    for (let i = 0; i < sealed.length; i++) {
      const bad = Buffer.from(sealed);
      bad[i]! ^= 1 << i % 8;
      expectAuthFailed(() => open(key, nonce, bad, aad), `flipped byte ${i} (${i >= 300 ? 'tag' : 'ciphertext'})`);
    }
    expectAuthFailed(() => open(key, nonce, sealed, Buffer.from('volume 7, block 4243')), 'other AAD');
    expectAuthFailed(() => open(key, nonce, sealed), 'missing AAD');
    for (let i = 0; i < nonceBytes; i++) {
      const badNonce = Buffer.from(nonce);
      badNonce[i]! ^= 0x80;
      expectAuthFailed(() => open(key, badNonce, sealed, aad), `nonce byte ${i}`);
    }
    const badKey = Buffer.from(key);
    badKey[31]! ^= 1;
    expectAuthFailed(() => open(badKey, nonce, sealed, aad), 'other key');
    expectAuthFailed(() => open(key, nonce, sealed.subarray(0, sealed.length - 1), aad), 'truncated');
    expectAuthFailed(() => open(key, nonce, sealed.subarray(0, 15), aad), 'shorter than a tag');
    expectAuthFailed(() => open(key, nonce, Buffer.concat([sealed, Buffer.from([0])]), aad), 'extended');
    assert.ok(Buffer.from(open(key, nonce, sealed, aad)).equals(plaintext), 'the untouched message still opens');
  });

  test(`${name}: fuzzed messages never open and never crash (fast-check)`, () => {
    const key = randomBytes(32);
    const nonce = randomBytes(nonceBytes);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), fc.uint8Array({ maxLength: 40 }), (bytes, aad) => {
        expectAuthFailed(() => open(key, nonce, bytes, aad), 'random bytes');
      }),
      { numRuns: 1000 },
    );
  });
}

test('AEAD zero-copy open: a wrong tag leaves the ciphertext in place, no plaintext', () => {
  const k = new KernelInstance({ memoryBytes: 2 * 1024 * 1024 });
  const key = k.reserve(32);
  const nonce = k.reserve(12);
  const tag = k.reserve(16);
  const data = k.reserve(100000);
  key.view.set(randomBytes(32));
  nonce.view.set(randomBytes(12));
  const plaintext = randomBytes(data.sizeBytes);
  data.view.set(plaintext);
  k.sealAt(false, key.ptr, nonce.ptr, key.ptr, 0, data.ptr, data.sizeBytes, tag.ptr);
  const ciphertext = Buffer.from(data.view);
  tag.view[0]! ^= 1;
  assert.throws(() => k.openAt(false, key.ptr, nonce.ptr, key.ptr, 0, data.ptr, data.sizeBytes, tag.ptr), (err: unknown) => hasCode(err, 'AUTH_FAILED'));
  assert.ok(Buffer.from(data.view).equals(ciphertext), 'the region still holds the ciphertext');
  tag.view[0]! ^= 1;
  k.openAt(false, key.ptr, nonce.ptr, key.ptr, 0, data.ptr, data.sizeBytes, tag.ptr);
  assert.ok(Buffer.from(data.view).equals(plaintext), 'the right tag opens it in place');
});

test('AEAD leaves no key material and no keystream in the module static data', () => {
  // The memory is shared with the pool's main thread, so scratch below heapBase must not keep
  // the XChaCha subkey, the ChaCha state (its rounds invert back to the key) or keystream.
  const k = new KernelInstance({ memoryBytes: 2 * 1024 * 1024 });
  const key = k.reserve(32);
  const nonce = k.reserve(24);
  const aad = k.reserve(16);
  const tag = k.reserve(16);
  const data = k.reserve(512);
  const staticData = (): Buffer => Buffer.from(k.bytes.subarray(0, k.heapBase));
  nonce.view.set(randomBytes(24));
  aad.view.set(randomBytes(16));
  for (const extended of [false, true]) {
    for (const op of ['seal', 'open'] as const) {
      // Whole Poly1305 blocks and ChaCha batches, so nothing data-dependent is buffered either:
      // what the call leaves below heapBase must then be the same under any key.
      const after = (keyBytes: Buffer): Buffer => {
        key.view.set(keyBytes);
        data.view.set(Buffer.alloc(512, 7));
        tag.view.fill(0);
        if (op === 'seal') k.sealAt(extended, key.ptr, nonce.ptr, aad.ptr, 16, data.ptr, 512, tag.ptr);
        else assert.throws(() => k.openAt(extended, key.ptr, nonce.ptr, aad.ptr, 16, data.ptr, 512, tag.ptr), (err: unknown) => hasCode(err, 'AUTH_FAILED'));
        return staticData();
      };
      const first = after(randomBytes(32));
      assert.ok(after(randomBytes(32)).equals(first), `${extended ? 'XChaCha20' : 'ChaCha20'} ${op}: static data depends on the key`);
    }
  }
  // A failed open with a partial last batch: the tail's keystream (ciphertext XOR plaintext)
  // must not stay behind, or the ciphertext would give the plaintext away.
  key.view.set(randomBytes(32));
  const plaintext = randomBytes(300);
  data.view.set(plaintext);
  k.sealAt(false, key.ptr, nonce.ptr, aad.ptr, 16, data.ptr, plaintext.length, tag.ptr);
  const ciphertext = Buffer.from(data.view.subarray(0, plaintext.length));
  tag.view[0]! ^= 1;
  assert.throws(() => k.openAt(false, key.ptr, nonce.ptr, aad.ptr, 16, data.ptr, plaintext.length, tag.ptr), (err: unknown) => hasCode(err, 'AUTH_FAILED'));
  const tailKeystream = Buffer.from(ciphertext.subarray(256).map((c, i) => c ^ plaintext[256 + i]!));
  assert.equal(staticData().indexOf(tailKeystream), -1, 'the tail keystream is left in static data');
  assert.equal(staticData().indexOf(plaintext.subarray(256)), -1, 'the tail plaintext is left in static data');
});

test('one-shot API rejects wrong key and nonce sizes with BAD_ARGUMENT', () => {
  assert.throws(() => chacha20poly1305Seal(randomBytes(31), randomBytes(12), Buffer.alloc(1)), (err: unknown) => hasCode(err, 'BAD_ARGUMENT'));
  assert.throws(() => chacha20poly1305Seal(randomBytes(32), randomBytes(24), Buffer.alloc(1)), (err: unknown) => hasCode(err, 'BAD_ARGUMENT'));
  assert.throws(() => xchacha20poly1305Open(randomBytes(32), randomBytes(12), Buffer.alloc(20)), (err: unknown) => hasCode(err, 'BAD_ARGUMENT'));
});
