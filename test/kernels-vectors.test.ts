import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  chacha20poly1305Open,
  chacha20poly1305Seal,
  crc32c,
  KernelInstance,
  xchacha20poly1305Open,
  xchacha20poly1305Seal,
} from '../src/kernels/index.js';
import { publishedVectors as v } from './helpers/kernel-vectors.js';

// Published vectors: CRC32C (check value, RFC 3720 B.4), RFC 8439 (ChaCha20 block and
// cipher, Poly1305, key generation, AEAD) and draft-irtf-cfrg-xchacha (HChaCha20, AEAD).

const hex = (text: string): Buffer => Buffer.from(text.replace(/[^0-9a-f]/gi, ''), 'hex');
const seq = (from: number, count: number, step = 1): Buffer => Buffer.from(Array.from({ length: count }, (_, i) => (from + i * step) & 0xff));

/** A small instance of our own for the low-level exports (block function, Poly1305, HChaCha20). */
const k = new KernelInstance({ memoryBytes: 4 * 1024 * 1024 });
const key = k.reserve(32);
const nonce = k.reserve(24);
const out = k.reserve(64);
const data = k.reserve(4096);

function block(keyBytes: Buffer, counter: number, nonceBytes: Buffer): Buffer {
  key.view.set(keyBytes);
  nonce.view.set(nonceBytes);
  k.exports.chacha20Block(key.ptr, counter, nonce.ptr, out.ptr);
  return Buffer.from(out.view.subarray(0, 64));
}

function encrypt(keyBytes: Buffer, counter: number, nonceBytes: Buffer, plaintext: Buffer): Buffer {
  key.view.set(keyBytes);
  nonce.view.set(nonceBytes);
  data.view.set(plaintext);
  k.exports.chacha20Xor(key.ptr, counter, nonce.ptr, data.ptr, data.ptr, plaintext.length);
  return Buffer.from(data.view.subarray(0, plaintext.length));
}

function poly(oneTimeKey: Buffer, message: Buffer, limbs: 26 | 44): Buffer {
  key.view.set(oneTimeKey);
  data.view.set(message);
  const mac = limbs === 26 ? k.exports.poly1305Mac : k.exports.poly1305Mac44;
  mac(key.ptr, data.ptr, message.length, out.ptr);
  return Buffer.from(out.view.subarray(0, 16));
}

test('CRC32C check value and the iSCSI vectors of RFC 3720 B.4', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  assert.equal(crc32c(seq(0, 32)), 0x46dd794e);
  assert.equal(crc32c(seq(31, 32, -1)), 0x113fdb5c);
  const readPdu = hex('01c00000 00000000 00000000 00000000 14000000 00000400 00000014 00000018 28000000 00000000 02000000 00000000');
  assert.equal(readPdu.length, 48);
  assert.equal(crc32c(readPdu), 0xd9963a56);
  assert.equal(crc32c(new Uint8Array(0)), 0);
});

test('ChaCha20 block function: RFC 8439 2.3.2 and A.1', () => {
  const key0 = Buffer.alloc(32);
  const nonce0 = Buffer.alloc(12);
  assert.equal(block(seq(0, 32), 1, hex('000000090000004a00000000')).toString('hex'), v.block232);
  assert.equal(block(key0, 0, nonce0).toString('hex'), v.a11);
  assert.equal(block(key0, 1, nonce0).toString('hex'), v.a12);
  const key1 = Buffer.alloc(32);
  key1[31] = 1;
  assert.equal(block(key1, 1, nonce0).toString('hex'), v.a13);
  const keyFf = Buffer.alloc(32);
  keyFf[1] = 0xff;
  assert.equal(block(keyFf, 2, nonce0).toString('hex'), v.a14);
  assert.equal(block(key0, 0, hex('000000000000000000000002')).toString('hex'), v.a15);
});

test('ChaCha20 encryption: RFC 8439 2.4.2 and A.2 (SIMD path and tail)', () => {
  assert.equal(encrypt(seq(0, 32), 1, hex('000000000000004a00000000'), hex(v.sunscreen)).toString('hex'), v.cipher242);
  assert.equal(encrypt(Buffer.alloc(32), 0, Buffer.alloc(12), Buffer.alloc(64)).toString('hex'), v.a11);
  const key1 = Buffer.alloc(32);
  key1[31] = 1;
  assert.equal(encrypt(key1, 1, hex('000000000000000000000002'), hex(v.ietfText)).toString('hex'), v.a22Ct);
  assert.equal(encrypt(hex(v.key1c92), 42, hex('000000000000000000000002'), hex(v.jabberwocky)).toString('hex'), v.a23Ct);
});

test('Poly1305: RFC 8439 2.5.2 and A.3 #1-#11, both limb layouts', () => {
  const r = (rHex: string, sHex: string): Buffer => Buffer.concat([hex(rHex), hex(sHex)]);
  const zero16 = '00000000000000000000000000000000';
  const cases: [string, Buffer, Buffer, string][] = [
    ['2.5.2', hex('85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b'), Buffer.from('Cryptographic Forum Research Group'), 'a8061dc1305136c6c22b8baf0c0127a9'],
    ['A.3 #1', Buffer.alloc(32), Buffer.alloc(64), zero16],
    ['A.3 #2', r(zero16, '36e5f6b5c5e06070f0efca96227a863e'), hex(v.ietfText), '36e5f6b5c5e06070f0efca96227a863e'],
    ['A.3 #3', r('36e5f6b5c5e06070f0efca96227a863e', zero16), hex(v.ietfText), 'f3477e7cd95417af89a6b8794c310cf0'],
    ['A.3 #4', hex(v.key1c92), hex(v.jabberwocky), '4541669a7eaaee61e708dc7cbcc5eb62'],
    ['A.3 #5', r('02' + zero16.slice(2), zero16), Buffer.alloc(16, 0xff), '03' + zero16.slice(2)],
    ['A.3 #6', r('02' + zero16.slice(2), 'ffffffffffffffffffffffffffffffff'), hex('02' + zero16.slice(2)), '03' + zero16.slice(2)],
    [
      'A.3 #7',
      r('01' + zero16.slice(2), zero16),
      hex('ffffffffffffffffffffffffffffffff' + 'f0ffffffffffffffffffffffffffffff' + '11000000000000000000000000000000'),
      '05' + zero16.slice(2),
    ],
    [
      'A.3 #8',
      r('01' + zero16.slice(2), zero16),
      hex('ffffffffffffffffffffffffffffffff' + 'fbfefefefefefefefefefefefefefefe' + '01010101010101010101010101010101'),
      zero16,
    ],
    ['A.3 #9', r('02' + zero16.slice(2), zero16), hex('fdffffffffffffffffffffffffffffff'), 'faffffffffffffffffffffffffffffff'],
    [
      'A.3 #10',
      r('01000000000000000400000000000000', zero16),
      hex('e33594d7505e43b900000000000000003394d7505e4379cd01000000000000000000000000000000000000000000000001000000000000000000000000000000'),
      '14000000000000005500000000000000',
    ],
    [
      'A.3 #11',
      r('01000000000000000400000000000000', zero16),
      hex('e33594d7505e43b900000000000000003394d7505e4379cd010000000000000000000000000000000000000000000000'),
      '13000000000000000000000000000000',
    ],
  ];
  for (const [name, oneTimeKey, message, tag] of cases) {
    assert.equal(poly(oneTimeKey, message, 26).toString('hex'), tag, `${name} (radix 2^26)`);
    assert.equal(poly(oneTimeKey, message, 44).toString('hex'), tag, `${name} (radix 2^44)`);
  }
});

test('Poly1305 key generation: RFC 8439 2.6.2 and A.4', () => {
  const keyOf = (keyBytes: Buffer, nonceBytes: Buffer): string => block(keyBytes, 0, nonceBytes).subarray(0, 32).toString('hex');
  assert.equal(keyOf(seq(0x80, 32), hex('000000000001020304050607')), '8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646');
  assert.equal(keyOf(Buffer.alloc(32), Buffer.alloc(12)), v.a11.slice(0, 64));
  const key1 = Buffer.alloc(32);
  key1[31] = 1;
  assert.equal(keyOf(key1, hex('000000000000000000000002')), 'ecfa254f845f647473d3cb140da9e87606cb33066c447b87bc2666dde3fbb739');
  assert.equal(keyOf(hex(v.key1c92), hex('000000000000000000000002')), '965e3bc6f9ec7ed9560808f4d229f94b137ff275ca9b3fcbdd59deaad23310ae');
});

test('AEAD_CHACHA20_POLY1305: RFC 8439 2.8.2 seal and open', () => {
  const aeadKey = seq(0x80, 32);
  const aeadNonce = hex('07000000' + '4041424344454647');
  const aad = hex('50515253c0c1c2c3c4c5c6c7');
  const sealed = Buffer.from(chacha20poly1305Seal(aeadKey, aeadNonce, hex(v.sunscreen), aad));
  assert.equal(sealed.subarray(0, -16).toString('hex'), v.aead282Ct);
  assert.equal(sealed.subarray(-16).toString('hex'), '1ae10b594f09e26a7e902ecbd0600691');
  assert.equal(Buffer.from(chacha20poly1305Open(aeadKey, aeadNonce, sealed, aad)).toString('hex'), v.sunscreen);
});

test('AEAD_CHACHA20_POLY1305 decryption: RFC 8439 A.5', () => {
  const sealed = Buffer.concat([hex(v.a5Ct), hex('eead9d67890cbb22392336fea1851f38')]);
  const plaintext = chacha20poly1305Open(hex(v.key1c92), hex('000000000102030405060708'), sealed, hex('f33388860000000000004e91'));
  assert.equal(Buffer.from(plaintext).toString('hex'), v.a5Pt);
  assert.match(Buffer.from(plaintext).toString('utf8'), /^Internet-Drafts are draft documents/);
});

test('HChaCha20: draft-irtf-cfrg-xchacha 2.2.1', () => {
  key.view.set(seq(0, 32));
  nonce.view.set(hex('000000090000004a0000000031415927'));
  k.exports.hchacha20(key.ptr, nonce.ptr, out.ptr);
  // The subkey bytes as the draft prints them ("Resultant HChaCha20 subkey", first and last row).
  const expected = hex('82413b42 27b27bfe d30e4250 8a877d73 a0f9e4d5 8a74a853 c12ec413 26d3ecdc');
  assert.equal(Buffer.from(out.view.subarray(0, 32)).toString('hex'), expected.toString('hex'));
});

test('AEAD_XCHACHA20_POLY1305: draft-irtf-cfrg-xchacha A.3.1', () => {
  const xKey = seq(0x80, 32);
  const xNonce = seq(0x40, 24);
  const aad = hex('50515253c0c1c2c3c4c5c6c7');
  const sealed = Buffer.from(xchacha20poly1305Seal(xKey, xNonce, hex(v.sunscreen), aad));
  assert.equal(sealed.subarray(0, -16).toString('hex'), v.xaeadCt);
  assert.equal(sealed.subarray(-16).toString('hex'), 'c0875924c1c7987947deafd8780acf49');
  assert.equal(Buffer.from(xchacha20poly1305Open(xKey, xNonce, sealed, aad)).toString('hex'), v.sunscreen);
});
