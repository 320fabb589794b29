// ChaCha20 (RFC 8439 section 2.3-2.4) and HChaCha20 (draft-irtf-cfrg-xchacha section 2.2).
//
// The bulk path runs four blocks at once with v128 SIMD: state word i of blocks n..n+3 sits in
// the four i32 lanes of vector xi, so each quarter round is the same 12 vector operations as
// the scalar one. Rotations by 16 and 8 are byte shuffles (one pshufb each on x86); rotations
// by 12 and 7 are shift, shift, or. After the 20 rounds the 16 vectors are transposed 4x4
// back into block order and XORed with the input, 256 bytes per iteration.
// A scalar block function serves HChaCha20 and the Poly1305 key (block 0). The core can
// also run Poly1305 stitched between its rounds, for the AEAD (aead.ts).

import { HIBIT26, MASK26, POLY_H, POLY_R, POLY_STATE } from './poly1305';

const SIGMA0: u32 = 0x61707865; // "expa"
const SIGMA1: u32 = 0x3320646e; // "nd 3"
const SIGMA2: u32 = 0x79622d32; // "2-by"
const SIGMA3: u32 = 0x6b206574; // "te k"
const DOUBLE_ROUNDS: i32 = 10;
const BLOCK_BYTES: usize = 64;
/** Four blocks: what the SIMD core produces per iteration. */
export const BATCH_BYTES: usize = 4 * BLOCK_BYTES;

/** Keystream for a partial final batch of four blocks (wiped after use). */
const TAIL_KEYSTREAM: usize = memory.data(<i32>BATCH_BYTES, 16);
/** 16 words of scalar working state (wiped after use). */
const SCALAR_STATE: usize = memory.data(64, 16);

// @ts-ignore: decorator
@inline function rotl16(v: v128): v128 {
  return i8x16.shuffle(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
}
// @ts-ignore: decorator
@inline function rotl8(v: v128): v128 {
  return i8x16.shuffle(v, v, 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14);
}
// @ts-ignore: decorator
@inline function rotl12(v: v128): v128 {
  return v128.or(i32x4.shl(v, 12), i32x4.shr_u(v, 20));
}
// @ts-ignore: decorator
@inline function rotl7(v: v128): v128 {
  return v128.or(i32x4.shl(v, 7), i32x4.shr_u(v, 25));
}

// Lane interleaves used by the 4x4 transpose.
// @ts-ignore: decorator
@inline function zipLo32(a: v128, b: v128): v128 { return v128.shuffle<u32>(a, b, 0, 4, 1, 5); }
// @ts-ignore: decorator
@inline function zipHi32(a: v128, b: v128): v128 { return v128.shuffle<u32>(a, b, 2, 6, 3, 7); }
// @ts-ignore: decorator
@inline function zipLo64(a: v128, b: v128): v128 { return v128.shuffle<u64>(a, b, 0, 2); }
// @ts-ignore: decorator
@inline function zipHi64(a: v128, b: v128): v128 { return v128.shuffle<u64>(a, b, 1, 3); }

/**
 * Writes four words a, b, c, d (as vectors over four blocks) to 16-byte slot `slot` of each
 * of the four 64-byte blocks at `dst`, XORed with the same bytes of `src`.
 */
// @ts-ignore: decorator
@inline function emit4(a: v128, b: v128, c: v128, d: v128, src: usize, dst: usize, slot: usize): void {
  const t0 = zipLo32(a, b);
  const t1 = zipLo32(c, d);
  const t2 = zipHi32(a, b);
  const t3 = zipHi32(c, d);
  const o = slot * 16;
  v128.store(dst + o, v128.xor(v128.load(src + o), zipLo64(t0, t1)));
  v128.store(dst + o + 64, v128.xor(v128.load(src + o + 64), zipHi64(t0, t1)));
  v128.store(dst + o + 128, v128.xor(v128.load(src + o + 128), zipLo64(t2, t3)));
  v128.store(dst + o + 192, v128.xor(v128.load(src + o + 192), zipHi64(t2, t3)));
}

/** What the SIMD core does with Poly1305 besides the keystream (see chachaBatches). */
export const MAC_NONE: i32 = 0;
/** MAC the previous batch's output (sealing: the ciphertext is what was just written). */
export const MAC_TRAILING: i32 = 1;
/** MAC each batch's input before it is XORed (opening: the ciphertext is the input). */
export const MAC_LEADING: i32 = 2;

/**
 * The SIMD core: XORs `batches` x 256 bytes at `src` with the ChaCha20 keystream from block
 * `counter` into `dst` (which may equal src), four blocks per batch. With a MAC mode it also
 * feeds 256 bytes per batch to the running Poly1305 (POLY_STATE) between the double rounds:
 * ChaCha runs on the vector units and Poly1305 on the scalar multiplier, so stitched together
 * the CPU overlaps them, where one after the other each leaves the other's units idle.
 * 16 Poly1305 blocks per batch: 2 after each of the first 6 double rounds, 1 after the rest.
 * With MAC_TRAILING the caller MACs the last batch afterwards. Returns the next counter.
 */
export function chachaBatches(key: usize, counter: u32, nonce: usize, src: usize, dst: usize, batches: usize, mac: i32): u32 {
  const k0 = i32x4.splat(load<u32>(key, 0));
  const k1 = i32x4.splat(load<u32>(key, 4));
  const k2 = i32x4.splat(load<u32>(key, 8));
  const k3 = i32x4.splat(load<u32>(key, 12));
  const k4 = i32x4.splat(load<u32>(key, 16));
  const k5 = i32x4.splat(load<u32>(key, 20));
  const k6 = i32x4.splat(load<u32>(key, 24));
  const k7 = i32x4.splat(load<u32>(key, 28));
  const n0 = i32x4.splat(load<u32>(nonce, 0));
  const n1 = i32x4.splat(load<u32>(nonce, 4));
  const n2 = i32x4.splat(load<u32>(nonce, 8));
  const c0 = i32x4.splat(SIGMA0);
  const c1 = i32x4.splat(SIGMA1);
  const c2 = i32x4.splat(SIGMA2);
  const c3 = i32x4.splat(SIGMA3);
  const laneStep = i32x4(0, 1, 2, 3);
  const st = POLY_STATE;
  const R0 = load<u64>(st, POLY_R + 0), R1 = load<u64>(st, POLY_R + 8), R2 = load<u64>(st, POLY_R + 16);
  const R3 = load<u64>(st, POLY_R + 24), R4 = load<u64>(st, POLY_R + 32);
  const S1 = R1 * 5, S2 = R2 * 5, S3 = R3 * 5, S4 = R4 * 5;
  let H0 = load<u64>(st, POLY_H + 0), H1 = load<u64>(st, POLY_H + 8), H2 = load<u64>(st, POLY_H + 16);
  let H3 = load<u64>(st, POLY_H + 24), H4 = load<u64>(st, POLY_H + 32);
  let ctr = counter;
  for (let b: usize = 0; b < batches; b++) {
    const s = src + b * BATCH_BYTES;
    const d = dst + b * BATCH_BYTES;
    const macNow = mac == MAC_LEADING || (mac == MAC_TRAILING && b != 0);
    let mp = mac == MAC_LEADING ? s : d - BATCH_BYTES;
    const counters = i32x4.add(i32x4.splat(ctr), laneStep);
    let x0 = c0, x1 = c1, x2 = c2, x3 = c3;
    let x4 = k0, x5 = k1, x6 = k2, x7 = k3;
    let x8 = k4, x9 = k5, x10 = k6, x11 = k7;
    let x12 = counters, x13 = n0, x14 = n1, x15 = n2;
    for (let i = 0; i < DOUBLE_ROUNDS; i++) {
      x0 = i32x4.add(x0, x4); x1 = i32x4.add(x1, x5); x2 = i32x4.add(x2, x6); x3 = i32x4.add(x3, x7);
      x12 = v128.xor(x12, x0); x13 = v128.xor(x13, x1); x14 = v128.xor(x14, x2); x15 = v128.xor(x15, x3);
      x12 = rotl16(x12); x13 = rotl16(x13); x14 = rotl16(x14); x15 = rotl16(x15);
      x8 = i32x4.add(x8, x12); x9 = i32x4.add(x9, x13); x10 = i32x4.add(x10, x14); x11 = i32x4.add(x11, x15);
      x4 = v128.xor(x4, x8); x5 = v128.xor(x5, x9); x6 = v128.xor(x6, x10); x7 = v128.xor(x7, x11);
      x4 = rotl12(x4); x5 = rotl12(x5); x6 = rotl12(x6); x7 = rotl12(x7);
      x0 = i32x4.add(x0, x4); x1 = i32x4.add(x1, x5); x2 = i32x4.add(x2, x6); x3 = i32x4.add(x3, x7);
      x12 = v128.xor(x12, x0); x13 = v128.xor(x13, x1); x14 = v128.xor(x14, x2); x15 = v128.xor(x15, x3);
      x12 = rotl8(x12); x13 = rotl8(x13); x14 = rotl8(x14); x15 = rotl8(x15);
      x8 = i32x4.add(x8, x12); x9 = i32x4.add(x9, x13); x10 = i32x4.add(x10, x14); x11 = i32x4.add(x11, x15);
      x4 = v128.xor(x4, x8); x5 = v128.xor(x5, x9); x6 = v128.xor(x6, x10); x7 = v128.xor(x7, x11);
      x4 = rotl7(x4); x5 = rotl7(x5); x6 = rotl7(x6); x7 = rotl7(x7);
      x0 = i32x4.add(x0, x5); x1 = i32x4.add(x1, x6); x2 = i32x4.add(x2, x7); x3 = i32x4.add(x3, x4);
      x15 = v128.xor(x15, x0); x12 = v128.xor(x12, x1); x13 = v128.xor(x13, x2); x14 = v128.xor(x14, x3);
      x15 = rotl16(x15); x12 = rotl16(x12); x13 = rotl16(x13); x14 = rotl16(x14);
      x10 = i32x4.add(x10, x15); x11 = i32x4.add(x11, x12); x8 = i32x4.add(x8, x13); x9 = i32x4.add(x9, x14);
      x5 = v128.xor(x5, x10); x6 = v128.xor(x6, x11); x7 = v128.xor(x7, x8); x4 = v128.xor(x4, x9);
      x5 = rotl12(x5); x6 = rotl12(x6); x7 = rotl12(x7); x4 = rotl12(x4);
      x0 = i32x4.add(x0, x5); x1 = i32x4.add(x1, x6); x2 = i32x4.add(x2, x7); x3 = i32x4.add(x3, x4);
      x15 = v128.xor(x15, x0); x12 = v128.xor(x12, x1); x13 = v128.xor(x13, x2); x14 = v128.xor(x14, x3);
      x15 = rotl8(x15); x12 = rotl8(x12); x13 = rotl8(x13); x14 = rotl8(x14);
      x10 = i32x4.add(x10, x15); x11 = i32x4.add(x11, x12); x8 = i32x4.add(x8, x13); x9 = i32x4.add(x9, x14);
      x5 = v128.xor(x5, x10); x6 = v128.xor(x6, x11); x7 = v128.xor(x7, x8); x4 = v128.xor(x4, x9);
      x5 = rotl7(x5); x6 = rotl7(x6); x7 = rotl7(x7); x4 = rotl7(x4);
      if (macNow) {
        let blocks = i < 6 ? 2 : 1;
        do {
          H0 += <u64>(load<u32>(mp, 0)) & MASK26;
          H1 += <u64>(load<u32>(mp, 3) >>> 2) & MASK26;
          H2 += <u64>(load<u32>(mp, 6) >>> 4) & MASK26;
          H3 += <u64>(load<u32>(mp, 9) >>> 6) & MASK26;
          H4 += <u64>(load<u32>(mp, 12) >>> 8) | HIBIT26;
          const d0 = H0 * R0 + H1 * S4 + H2 * S3 + H3 * S2 + H4 * S1;
          let d1 = H0 * R1 + H1 * R0 + H2 * S4 + H3 * S3 + H4 * S2;
          let d2 = H0 * R2 + H1 * R1 + H2 * R0 + H3 * S4 + H4 * S3;
          let d3 = H0 * R3 + H1 * R2 + H2 * R1 + H3 * R0 + H4 * S4;
          let d4 = H0 * R4 + H1 * R3 + H2 * R2 + H3 * R1 + H4 * R0;
          d1 += d0 >> 26; H0 = d0 & MASK26;
          d2 += d1 >> 26; H1 = d1 & MASK26;
          d3 += d2 >> 26; H2 = d2 & MASK26;
          d4 += d3 >> 26; H3 = d3 & MASK26;
          H0 += (d4 >> 26) * 5; H4 = d4 & MASK26;
          H1 += H0 >> 26; H0 &= MASK26;
          mp += 16;
        } while (--blocks != 0);
      }
    }
    x0 = i32x4.add(x0, c0); x1 = i32x4.add(x1, c1); x2 = i32x4.add(x2, c2); x3 = i32x4.add(x3, c3);
    x4 = i32x4.add(x4, k0); x5 = i32x4.add(x5, k1); x6 = i32x4.add(x6, k2); x7 = i32x4.add(x7, k3);
    x8 = i32x4.add(x8, k4); x9 = i32x4.add(x9, k5); x10 = i32x4.add(x10, k6); x11 = i32x4.add(x11, k7);
    x12 = i32x4.add(x12, counters); x13 = i32x4.add(x13, n0); x14 = i32x4.add(x14, n1); x15 = i32x4.add(x15, n2);
    emit4(x0, x1, x2, x3, s, d, 0);
    emit4(x4, x5, x6, x7, s, d, 1);
    emit4(x8, x9, x10, x11, s, d, 2);
    emit4(x12, x13, x14, x15, s, d, 3);
    ctr += 4;
  }
  if (mac != MAC_NONE) {
    store<u64>(st, H0, POLY_H + 0); store<u64>(st, H1, POLY_H + 8); store<u64>(st, H2, POLY_H + 16);
    store<u64>(st, H3, POLY_H + 24); store<u64>(st, H4, POLY_H + 32);
  }
  return ctr;
}

/**
 * XORs `len` bytes at `src` with the ChaCha20 keystream for (key, counter, nonce) and writes
 * them to `dst` (which may equal `src`). Returns the block counter after the last block used.
 * `key` is 32 bytes, `nonce` 12 bytes, both in memory.
 */
export function chacha20Xor(key: usize, counter: u32, nonce: usize, src: usize, dst: usize, len: usize): u32 {
  const batches = len / BATCH_BYTES;
  let ctr = chachaBatches(key, counter, nonce, src, dst, batches, MAC_NONE);
  const done = batches * BATCH_BYTES;
  const rest = len - done;
  if (rest != 0) {
    // Partial batch: materialise the keystream (XOR over zeros), then XOR only the bytes we have.
    const stream = TAIL_KEYSTREAM;
    memory.fill(stream, 0, BATCH_BYTES);
    chachaBatches(key, ctr, nonce, stream, stream, 1, MAC_NONE);
    const s = src + done;
    const d = dst + done;
    let i: usize = 0;
    for (; i + 8 <= rest; i += 8) store<u64>(d + i, load<u64>(s + i) ^ load<u64>(stream + i));
    for (; i < rest; i++) store<u8>(d + i, load<u8>(s + i) ^ load<u8>(stream + i));
    memory.fill(stream, 0, BATCH_BYTES); // keystream XOR public ciphertext = plaintext
    ctr += <u32>((rest + BLOCK_BYTES - 1) / BLOCK_BYTES);
  }
  return ctr;
}

/** 20 ChaCha rounds over the 16 words at SCALAR_STATE, in place (no final addition). */
function scalarRounds(): void {
  const st = SCALAR_STATE;
  let x0 = load<u32>(st, 0), x1 = load<u32>(st, 4), x2 = load<u32>(st, 8), x3 = load<u32>(st, 12);
  let x4 = load<u32>(st, 16), x5 = load<u32>(st, 20), x6 = load<u32>(st, 24), x7 = load<u32>(st, 28);
  let x8 = load<u32>(st, 32), x9 = load<u32>(st, 36), x10 = load<u32>(st, 40), x11 = load<u32>(st, 44);
  let x12 = load<u32>(st, 48), x13 = load<u32>(st, 52), x14 = load<u32>(st, 56), x15 = load<u32>(st, 60);
  for (let i = 0; i < DOUBLE_ROUNDS; i++) {
    x0 += x4; x12 = rotl<u32>(x12 ^ x0, 16); x8 += x12; x4 = rotl<u32>(x4 ^ x8, 12);
    x0 += x4; x12 = rotl<u32>(x12 ^ x0, 8); x8 += x12; x4 = rotl<u32>(x4 ^ x8, 7);
    x1 += x5; x13 = rotl<u32>(x13 ^ x1, 16); x9 += x13; x5 = rotl<u32>(x5 ^ x9, 12);
    x1 += x5; x13 = rotl<u32>(x13 ^ x1, 8); x9 += x13; x5 = rotl<u32>(x5 ^ x9, 7);
    x2 += x6; x14 = rotl<u32>(x14 ^ x2, 16); x10 += x14; x6 = rotl<u32>(x6 ^ x10, 12);
    x2 += x6; x14 = rotl<u32>(x14 ^ x2, 8); x10 += x14; x6 = rotl<u32>(x6 ^ x10, 7);
    x3 += x7; x15 = rotl<u32>(x15 ^ x3, 16); x11 += x15; x7 = rotl<u32>(x7 ^ x11, 12);
    x3 += x7; x15 = rotl<u32>(x15 ^ x3, 8); x11 += x15; x7 = rotl<u32>(x7 ^ x11, 7);
    x0 += x5; x15 = rotl<u32>(x15 ^ x0, 16); x10 += x15; x5 = rotl<u32>(x5 ^ x10, 12);
    x0 += x5; x15 = rotl<u32>(x15 ^ x0, 8); x10 += x15; x5 = rotl<u32>(x5 ^ x10, 7);
    x1 += x6; x12 = rotl<u32>(x12 ^ x1, 16); x11 += x12; x6 = rotl<u32>(x6 ^ x11, 12);
    x1 += x6; x12 = rotl<u32>(x12 ^ x1, 8); x11 += x12; x6 = rotl<u32>(x6 ^ x11, 7);
    x2 += x7; x13 = rotl<u32>(x13 ^ x2, 16); x8 += x13; x7 = rotl<u32>(x7 ^ x8, 12);
    x2 += x7; x13 = rotl<u32>(x13 ^ x2, 8); x8 += x13; x7 = rotl<u32>(x7 ^ x8, 7);
    x3 += x4; x14 = rotl<u32>(x14 ^ x3, 16); x9 += x14; x4 = rotl<u32>(x4 ^ x9, 12);
    x3 += x4; x14 = rotl<u32>(x14 ^ x3, 8); x9 += x14; x4 = rotl<u32>(x4 ^ x9, 7);
  }
  store<u32>(st, x0, 0); store<u32>(st, x1, 4); store<u32>(st, x2, 8); store<u32>(st, x3, 12);
  store<u32>(st, x4, 16); store<u32>(st, x5, 20); store<u32>(st, x6, 24); store<u32>(st, x7, 28);
  store<u32>(st, x8, 32); store<u32>(st, x9, 36); store<u32>(st, x10, 40); store<u32>(st, x11, 44);
  store<u32>(st, x12, 48); store<u32>(st, x13, 52); store<u32>(st, x14, 56); store<u32>(st, x15, 60);
}

function loadScalarState(key: usize, word12: u32, nonce: usize): void {
  const st = SCALAR_STATE;
  store<u32>(st, SIGMA0, 0);
  store<u32>(st, SIGMA1, 4);
  store<u32>(st, SIGMA2, 8);
  store<u32>(st, SIGMA3, 12);
  for (let i: usize = 0; i < 8; i++) store<u32>(st + 16 + i * 4, load<u32>(key + i * 4));
  store<u32>(st, word12, 48);
  for (let i: usize = 0; i < 3; i++) store<u32>(st + 52 + i * 4, load<u32>(nonce + i * 4));
}

/** One 64-byte ChaCha20 block (RFC 8439 2.3) for (key, counter, nonce12) written to `out`. */
export function chacha20Block(key: usize, counter: u32, nonce: usize, out: usize): void {
  loadScalarState(key, counter, nonce);
  scalarRounds();
  const st = SCALAR_STATE;
  store<u32>(out, load<u32>(st, 0) + SIGMA0, 0);
  store<u32>(out, load<u32>(st, 4) + SIGMA1, 4);
  store<u32>(out, load<u32>(st, 8) + SIGMA2, 8);
  store<u32>(out, load<u32>(st, 12) + SIGMA3, 12);
  for (let i: usize = 0; i < 8; i++) store<u32>(out + 16 + i * 4, load<u32>(st + 16 + i * 4) + load<u32>(key + i * 4));
  store<u32>(out, load<u32>(st, 48) + counter, 48);
  for (let i: usize = 0; i < 3; i++) store<u32>(out + 52 + i * 4, load<u32>(st + 52 + i * 4) + load<u32>(nonce + i * 4));
  memory.fill(st, 0, 64); // the rounds are invertible: the state gives the key back
}

/**
 * HChaCha20 (draft-irtf-cfrg-xchacha 2.2): the 20 rounds over (key, nonce16) with no final
 * addition; the subkey is words 0-3 and 12-15. `nonce16` is the first 16 nonce bytes.
 */
export function hchacha20(key: usize, nonce16: usize, out: usize): void {
  // Words 12-15 are the 16 nonce bytes: word 12 first, then the three "nonce" words.
  loadScalarState(key, load<u32>(nonce16), nonce16 + 4);
  scalarRounds();
  const st = SCALAR_STATE;
  for (let i: usize = 0; i < 4; i++) store<u32>(out + i * 4, load<u32>(st + i * 4));
  for (let i: usize = 0; i < 4; i++) store<u32>(out + 16 + i * 4, load<u32>(st + 48 + i * 4));
  memory.fill(st, 0, 64); // holds the subkey
}
