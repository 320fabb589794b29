import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  chacha20poly1305Seal,
  codecIds,
  crc32c,
  decodeFrameHeader,
  encodeFrameHeader,
  FrameCodec,
  frameBytesOf,
  frameHeaderBytes,
  lz4CompressBlock,
  NonceSequence,
  xchacha20poly1305Seal,
  ZstdContext,
  type CipherName,
  type CodecName,
  type FrameHeader,
} from '../src/kernels/index.js';
import { hasCode } from '../src/util/errors.js';

// The sealed frame: CRC32C -> compress if it helps -> AEAD, and open verifying every step.

const require = createRequire(import.meta.url);
const zstdNapi = require('zstd-napi') as { compress(data: Buffer): Buffer; decompress(data: Buffer): Buffer };

const key = randomBytes(32);
const frameBytesMax = 256 * 1024;
const text = Buffer.from(Array.from({ length: 6000 }, (_, i) => `write lba=${i * 8} len=4096 volume=mirror0 seq=${i}\n`).join('')).subarray(0, 200000);
const codecs = new Map<string, FrameCodec>();

async function codecFor(codec: CodecName, cipher: CipherName): Promise<FrameCodec> {
  const name = `${codec}/${cipher}`;
  if (!codecs.has(name)) codecs.set(name, await FrameCodec.create({ key, codec, cipher, frameBytesMax }));
  return codecs.get(name)!;
}

function expectCode(fn: () => unknown, code: string, message: string): void {
  assert.throws(fn, (err: unknown) => hasCode(err, code), message);
}

test('frames round-trip for every codec and cipher; compression is kept only when it helps', async () => {
  const receiver = await FrameCodec.create({ key, frameBytesMax });
  for (const cipher of ['chacha20-poly1305', 'xchacha20-poly1305'] as const) {
    for (const codec of ['lz4', 'zstd', 'raw'] as const) {
      const sender = await codecFor(codec, cipher);
      const cases: [Buffer, boolean][] = [
        [text, true],
        [randomBytes(70000), false],
        [Buffer.alloc(0), false],
        [Buffer.from('x'), false],
        [Buffer.alloc(frameBytesMax, 3), true],
      ];
      for (const [plaintext, compressible] of cases) {
        const frame = sender.seal(plaintext);
        const header = decodeFrameHeader(frame, 0, frame.length, frameBytesMax);
        assert.equal(header.cipher, cipher);
        assert.equal(header.plaintextBytes, plaintext.length);
        assert.equal(frameBytesOf(header), frame.length);
        assert.equal(header.codec, codec !== 'raw' && compressible ? codec : 'raw', `${codec}/${cipher}, ${plaintext.length} bytes`);
        if (header.codec === 'raw') assert.equal(frame.length, plaintext.length + 16 + (cipher === 'chacha20-poly1305' ? 12 : 24) + 4 + 16);
        else assert.ok(frame.length < plaintext.length / 3, 'compressible data shrinks');
        assert.ok(Buffer.from(receiver.open(frame)).equals(plaintext), `${codec}/${cipher} ${plaintext.length} bytes opens`);
      }
    }
  }
});

test('the frame header is bound to the ciphertext, and caller AAD binds frames to their context', async () => {
  const codec = await codecFor('lz4', 'xchacha20-poly1305');
  const aad = Buffer.from('mirror0 seq 17');
  const frame = codec.seal(text.subarray(0, 5000), aad);
  assert.ok(Buffer.from(codec.open(frame, aad)).equals(text.subarray(0, 5000)));
  expectCode(() => codec.open(frame), 'AUTH_FAILED', 'AAD missing');
  expectCode(() => codec.open(frame, Buffer.from('mirror0 seq 18')), 'AUTH_FAILED', 'other AAD');
  // Two seals of the same data never share a nonce, so never share a ciphertext.
  const again = codec.seal(text.subarray(0, 5000), aad);
  assert.ok(!Buffer.from(again).equals(Buffer.from(frame)));
  // Every single bit flip is caught: header fields by their checks or the AEAD, the rest by the AEAD.
  for (let i = 0; i < frame.length; i += 1) {
    const bad = Buffer.from(frame);
    bad[i]! ^= 1 << i % 8;
    assert.throws(
      () => codec.open(bad, aad),
      (err: unknown) => hasCode(err, 'BAD_FRAME') || hasCode(err, 'AUTH_FAILED'),
      `bit flip at byte ${i}`,
    );
  }
  const otherKey = await FrameCodec.create({ key: randomBytes(32), frameBytesMax, zstd: false });
  expectCode(() => otherKey.open(frame, aad), 'AUTH_FAILED', 'other key');
});

test('malformed headers are BAD_FRAME with the reason', async () => {
  const codec = await codecFor('lz4', 'chacha20-poly1305');
  const frame = Buffer.from(codec.seal(text.subarray(0, 3000)));
  const mutate = (at: number, value: number): Buffer => {
    const bad = Buffer.from(frame);
    bad[at] = value;
    return bad;
  };
  const cases: [Buffer, RegExp][] = [
    [frame.subarray(0, 10), /shorter than the 16-byte header/],
    [mutate(0, 0x58), /wrong magic/],
    [mutate(2, 2), /version 2 is not supported/],
    [mutate(3, 9), /unknown codec id 9/],
    [mutate(4, 7), /unknown cipher id 7/],
    [mutate(5, 1), /reserved bytes/],
    [frame.subarray(0, frame.length - 1), /announces/],
    [Buffer.concat([frame, Buffer.alloc(1)]), /announces/],
  ];
  for (const [bad, reason] of cases) {
    assert.throws(() => codec.open(bad), (err: unknown) => hasCode(err, 'BAD_FRAME') && reason.test((err as Error).message), String(reason));
  }
  const big = Buffer.from(frame);
  big.writeUInt32LE(frameBytesMax + 1, 8);
  expectCode(() => codec.open(big), 'BAD_FRAME', 'plaintext beyond frameBytesMax');
  expectCode(() => codec.seal(Buffer.alloc(frameBytesMax + 1)), 'TOO_LARGE', 'seal beyond frameBytesMax');
});

/** Builds an authentic frame with chosen contents (what only a buggy sender with the key could send). */
function craftFrame(cipher: CipherName, codec: CodecName, plaintextBytes: number, crc: number, payload: Uint8Array): Buffer {
  const nonceBytes = cipher === 'xchacha20-poly1305' ? 24 : 12;
  const header: FrameHeader = { version: 1, codec, cipher, plaintextBytes, bodyBytes: 4 + payload.length };
  const head = Buffer.alloc(frameHeaderBytes + nonceBytes);
  encodeFrameHeader(head, 0, header);
  randomBytes(nonceBytes).copy(head, frameHeaderBytes);
  const body = Buffer.alloc(4 + payload.length);
  body.writeUInt32LE(crc, 0);
  body.set(payload, 4);
  const nonce = head.subarray(frameHeaderBytes);
  const sealed = cipher === 'xchacha20-poly1305' ? xchacha20poly1305Seal(key, nonce, body, head) : chacha20poly1305Seal(key, nonce, body, head);
  return Buffer.concat([head, sealed]);
}

test('authentic frames that fail later steps: CORRUPT_INPUT and CHECKSUM_MISMATCH', async () => {
  const codec = await codecFor('lz4', 'xchacha20-poly1305');
  const plain = text.subarray(0, 4000);
  const block = lz4CompressBlock(plain);
  // Sanity: the crafted frame opens when everything is right.
  assert.ok(Buffer.from(codec.open(craftFrame('xchacha20-poly1305', 'lz4', plain.length, crc32c(plain), block))).equals(plain));
  expectCode(() => codec.open(craftFrame('xchacha20-poly1305', 'lz4', plain.length, crc32c(plain) ^ 1, block)), 'CHECKSUM_MISMATCH', 'wrong CRC');
  expectCode(() => codec.open(craftFrame('chacha20-poly1305', 'raw', 5, crc32c(Buffer.from('hellp')), Buffer.from('hello'))), 'CHECKSUM_MISMATCH', 'raw, wrong CRC');
  expectCode(() => codec.open(craftFrame('xchacha20-poly1305', 'lz4', plain.length, crc32c(plain), block.subarray(0, 100))), 'CORRUPT_INPUT', 'truncated LZ4');
  expectCode(() => codec.open(craftFrame('xchacha20-poly1305', 'lz4', plain.length + 1, 0, block)), 'CORRUPT_INPUT', 'LZ4 shorter than declared');
  expectCode(() => codec.open(craftFrame('xchacha20-poly1305', 'lz4', plain.length - 1, 0, block)), 'CORRUPT_INPUT', 'LZ4 longer than declared');
  expectCode(() => codec.open(craftFrame('xchacha20-poly1305', 'raw', 6, 0, Buffer.from('hello'))), 'CORRUPT_INPUT', 'raw length mismatch');
  expectCode(() => codec.open(craftFrame('xchacha20-poly1305', 'zstd', 100, 0, randomBytes(50))), 'CORRUPT_INPUT', 'garbage zstd');
  const zframe = zstdNapi.compress(plain);
  assert.ok(Buffer.from(codec.open(craftFrame('xchacha20-poly1305', 'zstd', plain.length, crc32c(plain), zframe))).equals(plain), 'a zstd-napi frame opens');
  expectCode(() => codec.open(craftFrame('xchacha20-poly1305', 'zstd', plain.length + 1, crc32c(plain), zframe)), 'CORRUPT_INPUT', 'zstd size differs');
  const noZstd = await FrameCodec.create({ key, frameBytesMax, zstd: false });
  expectCode(() => noZstd.open(craftFrame('xchacha20-poly1305', 'zstd', plain.length, crc32c(plain), zframe)), 'CODEC_UNAVAILABLE', 'no zstd');
});

test('fuzzed frames give only typed errors (fast-check)', async () => {
  const codec = await codecFor('lz4', 'chacha20-poly1305');
  const valid = Buffer.from(codec.seal(text.subarray(0, 2000)));
  const codes = new Set(['BAD_FRAME', 'AUTH_FAILED']);
  const check = (bytes: Uint8Array): void => {
    try {
      codec.open(bytes);
      assert.fail('a fuzzed frame opened');
    } catch (err) {
      if (!codes.has((err as { code?: string }).code ?? '')) throw err;
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), check), { numRuns: 2000 });
  const withMagic = fc.uint8Array({ minLength: 16, maxLength: 300 }).map((b) => {
    const out = Buffer.from(b);
    out[0] = 0x4d;
    out[1] = 0x46;
    out[2] = 1;
    out[3] = out[3]! % 3;
    out[4] = 1 + (out[4]! % 2);
    out[5] = 0;
    out[6] = 0;
    out[7] = 0;
    return out;
  });
  fc.assert(fc.property(withMagic, check), { numRuns: 2000 });
  fc.assert(
    fc.property(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 }), (at, flip) => {
      const bad = Buffer.from(valid);
      bad[at]! ^= flip;
      check(bad);
    }),
    { numRuns: 2000 },
  );
});

test('zero-copy seal and open through the codec regions', async () => {
  const codec = await codecFor('lz4', 'xchacha20-poly1305');
  const plaintext = text.subarray(0, 100000);
  codec.input.view.set(plaintext);
  const frame = Buffer.from(codec.sealInput(plaintext.length));
  assert.ok(frame.length < plaintext.length);
  codec.input.view.set(frame);
  assert.ok(Buffer.from(codec.openInput(frame.length)).equals(plaintext));
});

test('nonces: prefix plus a counter in submission order', () => {
  const sequence = new NonceSequence('chacha20-poly1305', Buffer.from([1, 2, 3, 4]), 0xfffffffe);
  const out = Buffer.alloc(12);
  sequence.write(out, 0, sequence.take());
  assert.equal(out.toString('hex'), '01020304' + 'feffffff00000000');
  sequence.write(out, 0, sequence.take());
  assert.equal(out.toString('hex'), '01020304' + 'ffffffff00000000');
  sequence.write(out, 0, sequence.take());
  assert.equal(out.toString('hex'), '01020304' + '0000000001000000');
  assert.equal(new NonceSequence('xchacha20-poly1305').prefix.length, 16);
});

test('zstd context: levels, limits and interop with zstd-napi', async () => {
  const zstd = await ZstdContext.create({ sizeBytesMax: 1024 * 1024 });
  for (const level of [1, 3, 9]) {
    const compressed = zstd.compress(text, level);
    assert.ok(zstdNapi.decompress(Buffer.from(compressed)).equals(text), `zstd-napi decodes level ${level}`);
    assert.ok(Buffer.from(zstd.decompress(compressed, text.length)).equals(text));
  }
  assert.ok(Buffer.from(zstd.decompress(zstdNapi.compress(text), text.length)).equals(text), 'we decode zstd-napi');
  expectCode(() => zstd.compress(text, 10), 'BAD_ARGUMENT', 'level above the supported maximum');
  expectCode(() => zstd.compress(text, 0), 'BAD_ARGUMENT', 'level 0');
  expectCode(() => zstd.decompress(zstd.compress(text), text.length - 1), 'CORRUPT_INPUT', 'declares more than allowed');
  expectCode(() => zstd.decompress(randomBytes(100), 1000), 'CORRUPT_INPUT', 'garbage');
  expectCode(() => zstd.decompress(new Uint8Array(0), 1000), 'CORRUPT_INPUT', 'empty');
  expectCode(() => zstd.compress(Buffer.alloc(1024 * 1024 + 1)), 'TOO_LARGE', 'beyond sizeBytesMax');
  await assert.rejects(ZstdContext.create({ sizeBytesMax: 8 * 1024 * 1024 }), (err: unknown) => hasCode(err, 'BAD_ARGUMENT'));
  assert.equal(codecIds.zstd, 2);
  // Many calls at the largest size and level: the fixed heap does not fragment into failure.
  const big = Buffer.concat([text, text, text, text, text]).subarray(0, 1024 * 1024);
  for (let i = 0; i < 20; i++) assert.ok(Buffer.from(zstd.decompress(zstd.compress(big, 9), big.length)).equals(big));
});

test('the worked example in src/kernels/FRAME.md is what the code produces', async () => {
  const exampleKey = Buffer.alloc(32, 0x11);
  const nonces = new NonceSequence('chacha20-poly1305', Buffer.from('a1a2a3a4', 'hex'), 7);
  const codec = await FrameCodec.create({ key: exampleKey, cipher: 'chacha20-poly1305', nonces, zstd: false });
  const frame = Buffer.from(codec.seal(Buffer.from('hello, mirror')));
  const documented =
    '4d460100010000000d00000011000000' + 'a1a2a3a40700000000000000' + '6212e31e482a5fa3d826063be47723115d' + 'c65f521dd4e9d127e4d80d2a824fa247';
  assert.equal(frame.toString('hex'), documented);
  assert.equal(crc32c(Buffer.from('hello, mirror')), 0x57aa2237);
  assert.equal(Buffer.from(codec.open(frame)).toString(), 'hello, mirror');
});
