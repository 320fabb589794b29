// ChaCha20-Poly1305 (RFC 8439 section 2.8) and XChaCha20-Poly1305
// (draft-irtf-cfrg-xchacha section 2.3), sealing and opening in place.
//
// Both directions make one pass over the data (`cryptAndMac`): ChaCha20 over four blocks
// at a time with Poly1305 stitched between its rounds. Open compares tags in constant time;
// on a mismatch it re-applies the keystream, so the buffer holds the ciphertext it came in
// with and no plaintext is released. Keys derived on the way (Poly1305 key, XChaCha
// subkey) are wiped before returning.

import {
  chacha20Block, chacha20Xor, emit4, hchacha20, rotl12, rotl16, rotl7, rotl8,
  SIGMA0, SIGMA1, SIGMA2, SIGMA3,
} from './chacha20';
import {
  HIBIT26, MASK26, POLY_H, POLY_R, POLY_STATE, poly1305Blocks, poly1305Finish, poly1305Init, poly1305Padded,
} from './poly1305';

/** Four ChaCha20 blocks: what the SIMD loop produces per iteration (16 Poly1305 blocks). */
const BATCH_BYTES: usize = 256;
export const AEAD_OK: i32 = 0;
export const AEAD_AUTH_FAILED: i32 = -1;

const BLOCK0: usize = memory.data(64, 16);
const LENGTHS: usize = memory.data(16, 16);
const EXPECTED_TAG: usize = memory.data(16, 16);
const SUBKEY: usize = memory.data(32, 16);
const NONCE12: usize = memory.data(16, 16);

function startMac(key: usize, nonce: usize, aad: usize, aadLen: usize): void {
  chacha20Block(key, 0, nonce, BLOCK0);
  poly1305Init(BLOCK0);
  memory.fill(BLOCK0, 0, 64);
  poly1305Padded(aad, aadLen);
}

function finishMac(aadLen: usize, dataLen: usize, out: usize): void {
  store<u64>(LENGTHS, <u64>aadLen, 0);
  store<u64>(LENGTHS, <u64>dataLen, 8);
  poly1305Blocks(LENGTHS, 16);
  poly1305Finish(out);
}

/**
 * Encrypts `dataLen` bytes at `data` in place and writes the 16-byte tag to `tag`.
 * key: 32 bytes, nonce: 12 bytes, aad: additional data (may be empty).
 */
export function chacha20poly1305Seal(key: usize, nonce: usize, aad: usize, aadLen: usize, data: usize, dataLen: usize, tag: usize): void {
  startMac(key, nonce, aad, aadLen);
  const batches = dataLen / BATCH_BYTES;
  const counter = cryptAndMac(key, 1, nonce, data, batches, true);
  const done = batches * BATCH_BYTES;
  if (done != dataLen) {
    chacha20Xor(key, counter, nonce, data + done, data + done, dataLen - done);
    poly1305Padded(data + done, dataLen - done);
  }
  finishMac(aadLen, dataLen, tag);
}

/** 0 when the 16 bytes at a and b are equal, in time independent of where they differ. */
function tagDifference(a: usize, b: usize): u64 {
  return (load<u64>(a, 0) ^ load<u64>(b, 0)) | (load<u64>(a, 8) ^ load<u64>(b, 8));
}

/**
 * Verifies the tag at `tag` over (aad, ciphertext at data) and returns AEAD_OK with the
 * data decrypted in place, or AEAD_AUTH_FAILED with the data as it came in (ciphertext).
 * The MAC and the decryption run stitched in one pass; on a wrong tag the keystream is
 * applied again, so no plaintext is left behind.
 */
export function chacha20poly1305Open(key: usize, nonce: usize, aad: usize, aadLen: usize, data: usize, dataLen: usize, tag: usize): i32 {
  startMac(key, nonce, aad, aadLen);
  const batches = dataLen / BATCH_BYTES;
  const counter = cryptAndMac(key, 1, nonce, data, batches, false);
  const done = batches * BATCH_BYTES;
  if (done != dataLen) {
    poly1305Padded(data + done, dataLen - done);
    chacha20Xor(key, counter, nonce, data + done, data + done, dataLen - done);
  }
  finishMac(aadLen, dataLen, EXPECTED_TAG);
  const difference = tagDifference(EXPECTED_TAG, tag);
  memory.fill(EXPECTED_TAG, 0, 16);
  if (difference != 0) {
    chacha20Xor(key, 1, nonce, data, data, dataLen); // back to ciphertext
    return AEAD_AUTH_FAILED;
  }
  return AEAD_OK;
}

/**
 * The stitched bulk loop: XORs `batches` x 256 bytes at `data` in place with the ChaCha20
 * keystream from block `counter`, and feeds 256 bytes of ciphertext per batch to Poly1305
 * between the double rounds. ChaCha runs on the SIMD units and Poly1305 on the scalar
 * multiplier, so interleaving them lets the CPU overlap the two; run one after the other
 * each would leave the other's units idle.
 * sealing: the MAC trails one batch behind (it reads ciphertext already written), and the
 *          last batch is MACed after the loop.
 * opening: the MAC reads each batch's ciphertext before the batch is decrypted.
 * Returns the block counter after the last batch.
 */
function cryptAndMac(key: usize, counter: u32, nonce: usize, data: usize, batches: usize, sealing: bool): u32 {
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
    const p = data + b * BATCH_BYTES;
    const macNow = !sealing || b != 0;
    let mp = sealing ? p - BATCH_BYTES : p;
    const counters = i32x4.add(i32x4.splat(ctr), laneStep);
    let x0 = c0, x1 = c1, x2 = c2, x3 = c3;
    let x4 = k0, x5 = k1, x6 = k2, x7 = k3;
    let x8 = k4, x9 = k5, x10 = k6, x11 = k7;
    let x12 = counters, x13 = n0, x14 = n1, x15 = n2;
    // 10 double rounds as 5 x 2, with 3 Poly1305 blocks per pair (the 16th follows).
    for (let i = 0; i < 5; i++) {
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
        {
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
        }
        {
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
        }
      }
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
        {
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
        }
      }
    }
    if (macNow) {
        {
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
        }
    }
    x0 = i32x4.add(x0, c0); x1 = i32x4.add(x1, c1); x2 = i32x4.add(x2, c2); x3 = i32x4.add(x3, c3);
    x4 = i32x4.add(x4, k0); x5 = i32x4.add(x5, k1); x6 = i32x4.add(x6, k2); x7 = i32x4.add(x7, k3);
    x8 = i32x4.add(x8, k4); x9 = i32x4.add(x9, k5); x10 = i32x4.add(x10, k6); x11 = i32x4.add(x11, k7);
    x12 = i32x4.add(x12, counters); x13 = i32x4.add(x13, n0); x14 = i32x4.add(x14, n1); x15 = i32x4.add(x15, n2);
    emit4(x0, x1, x2, x3, p, p, 0);
    emit4(x4, x5, x6, x7, p, p, 1);
    emit4(x8, x9, x10, x11, p, p, 2);
    emit4(x12, x13, x14, x15, p, p, 3);
    ctr += 4;
  }
  store<u64>(st, H0, POLY_H + 0); store<u64>(st, H1, POLY_H + 8); store<u64>(st, H2, POLY_H + 16);
  store<u64>(st, H3, POLY_H + 24); store<u64>(st, H4, POLY_H + 32);
  if (sealing && batches != 0) poly1305Blocks(data + (batches - 1) * BATCH_BYTES, BATCH_BYTES);
  return ctr;
}

/** Subkey and 12-byte nonce for XChaCha20 from the 24-byte nonce. */
function deriveX(key: usize, nonce24: usize): void {
  hchacha20(key, nonce24, SUBKEY);
  store<u32>(NONCE12, 0, 0);
  store<u64>(NONCE12, load<u64>(nonce24, 16), 4);
}

/** XChaCha20-Poly1305 seal: as chacha20poly1305Seal with a 24-byte nonce. */
export function xchacha20poly1305Seal(key: usize, nonce24: usize, aad: usize, aadLen: usize, data: usize, dataLen: usize, tag: usize): void {
  deriveX(key, nonce24);
  chacha20poly1305Seal(SUBKEY, NONCE12, aad, aadLen, data, dataLen, tag);
  memory.fill(SUBKEY, 0, 32);
}

/** XChaCha20-Poly1305 open: as chacha20poly1305Open with a 24-byte nonce. */
export function xchacha20poly1305Open(key: usize, nonce24: usize, aad: usize, aadLen: usize, data: usize, dataLen: usize, tag: usize): i32 {
  deriveX(key, nonce24);
  const result = chacha20poly1305Open(SUBKEY, NONCE12, aad, aadLen, data, dataLen, tag);
  memory.fill(SUBKEY, 0, 32);
  return result;
}
