// Poly1305 (RFC 8439 section 2.5), two limb layouts.
//
// radix 2^26 (five limbs): every product of two limbs fits a 64-bit multiply, and a sum of
//   five such products stays below 2^59, so a 16-byte block costs 25 i64.mul and one carry
//   chain. This is the layout the AEAD uses.
// radix 2^44 (three limbs): nine products per block, but each is 44 x 49 bits and needs the
//   high half of a 128-bit product, which wasm lacks; `mulHi` rebuilds it from four 32-bit
//   partial products. Kept as a measured alternative (see assembly/README.md).
//
// The 2^26 state lives in memory (POLY_STATE) so the AEAD can feed the MAC in pieces
// (AAD, padding, ciphertext chunks, lengths) and its stitched loop can take it over; hot
// loops copy it to locals.

export const MASK26: u64 = 0x3ffffff;
export const HIBIT26: u64 = 1 << 24;

/**
 * The running radix-2^26 state, in memory so that other kernels (the stitched AEAD loop)
 * can take it over: r0..r4 at 0..39, h0..h4 at 40..79 (u64 each), s (the pad) at 80..95.
 */
export const POLY_STATE: usize = memory.data(96, 16);
export const POLY_R: usize = 0;
export const POLY_H: usize = 40;
export const POLY_PAD: usize = 80;

/** A zero-padded copy of a final partial block. */
const PARTIAL_BLOCK: usize = memory.data(16, 16);

/** Starts a MAC with the 32-byte one-time key at `key` (r is clamped here). */
export function poly1305Init(key: usize): void {
  const st = POLY_STATE;
  store<u64>(st, <u64>(load<u32>(key, 0)) & 0x3ffffff, POLY_R + 0);
  store<u64>(st, <u64>(load<u32>(key, 3) >>> 2) & 0x3ffff03, POLY_R + 8);
  store<u64>(st, <u64>(load<u32>(key, 6) >>> 4) & 0x3ffc0ff, POLY_R + 16);
  store<u64>(st, <u64>(load<u32>(key, 9) >>> 6) & 0x3f03fff, POLY_R + 24);
  store<u64>(st, <u64>(load<u32>(key, 12) >>> 8) & 0x00fffff, POLY_R + 32);
  memory.fill(st + POLY_H, 0, 40);
  memory.copy(st + POLY_PAD, key + 16, 16);
}

/** Absorbs floor(len / 16) full blocks at `m`; `hibit` is 2^128 in limb 4 (0 for a padded final). */
function blocks26(m: usize, len: usize, hibit: u64): void {
  const st = POLY_STATE;
  const R0 = load<u64>(st, POLY_R + 0), R1 = load<u64>(st, POLY_R + 8), R2 = load<u64>(st, POLY_R + 16);
  const R3 = load<u64>(st, POLY_R + 24), R4 = load<u64>(st, POLY_R + 32);
  const S1 = R1 * 5, S2 = R2 * 5, S3 = R3 * 5, S4 = R4 * 5;
  let H0 = load<u64>(st, POLY_H + 0), H1 = load<u64>(st, POLY_H + 8), H2 = load<u64>(st, POLY_H + 16);
  let H3 = load<u64>(st, POLY_H + 24), H4 = load<u64>(st, POLY_H + 32);
  let p = m;
  let n = len;
  while (n >= 16) {
    H0 += <u64>(load<u32>(p, 0)) & MASK26;
    H1 += <u64>(load<u32>(p, 3) >>> 2) & MASK26;
    H2 += <u64>(load<u32>(p, 6) >>> 4) & MASK26;
    H3 += <u64>(load<u32>(p, 9) >>> 6) & MASK26;
    H4 += <u64>(load<u32>(p, 12) >>> 8) | hibit;
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
    p += 16;
    n -= 16;
  }
  store<u64>(st, H0, POLY_H + 0); store<u64>(st, H1, POLY_H + 8); store<u64>(st, H2, POLY_H + 16);
  store<u64>(st, H3, POLY_H + 24); store<u64>(st, H4, POLY_H + 32);
}

/** Absorbs full blocks only (len must be a multiple of 16, as in the AEAD's padded data). */
export function poly1305Blocks(m: usize, len: usize): void {
  blocks26(m, len, HIBIT26);
}

/** Absorbs `len` bytes then zero padding to a multiple of 16 (the AEAD's pad16). */
export function poly1305Padded(m: usize, len: usize): void {
  const full = len & ~(<usize>15);
  blocks26(m, full, HIBIT26);
  const rest = len - full;
  if (rest != 0) {
    memory.fill(PARTIAL_BLOCK, 0, 16);
    memory.copy(PARTIAL_BLOCK, m + full, rest);
    blocks26(PARTIAL_BLOCK, 16, HIBIT26);
  }
}

/** Absorbs a final partial message block the way plain Poly1305 does (0x01 then zeros). */
function finalPartial(m: usize, rest: usize): void {
  memory.fill(PARTIAL_BLOCK, 0, 16);
  memory.copy(PARTIAL_BLOCK, m, rest);
  store<u8>(PARTIAL_BLOCK + rest, 1);
  blocks26(PARTIAL_BLOCK, 16, 0);
}

/** Writes the 16-byte tag to `out` and wipes the state. */
export function poly1305Finish(out: usize): void {
  const st = POLY_STATE;
  let H0 = load<u64>(st, POLY_H + 0), H1 = load<u64>(st, POLY_H + 8), H2 = load<u64>(st, POLY_H + 16);
  let H3 = load<u64>(st, POLY_H + 24), H4 = load<u64>(st, POLY_H + 32);
  // Full carry, twice: after the first pass h1 may still be 2^26 exactly; after the second
  // every limb is below 2^26.
  for (let pass = 0; pass < 2; pass++) {
    H2 += H1 >> 26; H1 &= MASK26;
    H3 += H2 >> 26; H2 &= MASK26;
    H4 += H3 >> 26; H3 &= MASK26;
    H0 += (H4 >> 26) * 5; H4 &= MASK26;
    H1 += H0 >> 26; H0 &= MASK26;
  }
  // g = h + 5 - 2^130; if that does not borrow, h >= p and the result is g.
  let G0 = H0 + 5;
  let G1 = H1 + (G0 >> 26); G0 &= MASK26;
  let G2 = H2 + (G1 >> 26); G1 &= MASK26;
  let G3 = H3 + (G2 >> 26); G2 &= MASK26;
  const G4 = H4 + (G3 >> 26) - (1 << 26); G3 &= MASK26;
  const useG: u64 = (G4 >> 63) - 1; // all ones when no borrow
  const useH = ~useG;
  H0 = (H0 & useH) | (G0 & useG);
  H1 = (H1 & useH) | (G1 & useG);
  H2 = (H2 & useH) | (G2 & useG);
  H3 = (H3 & useH) | (G3 & useG);
  H4 = (H4 & useH) | ((G4 & MASK26) & useG);
  // Pack to 128 bits and add the pad (s) mod 2^128.
  const w0 = <u64>(<u32>(H0 | (H1 << 26)));
  const w1 = <u64>(<u32>((H1 >> 6) | (H2 << 20)));
  const w2 = <u64>(<u32>((H2 >> 12) | (H3 << 14)));
  const w3 = <u64>(<u32>((H3 >> 18) | (H4 << 8)));
  let f = w0 + <u64>load<u32>(st, POLY_PAD + 0);
  store<u32>(out, <u32>f, 0);
  f = w1 + <u64>load<u32>(st, POLY_PAD + 4) + (f >> 32);
  store<u32>(out, <u32>f, 4);
  f = w2 + <u64>load<u32>(st, POLY_PAD + 8) + (f >> 32);
  store<u32>(out, <u32>f, 8);
  f = w3 + <u64>load<u32>(st, POLY_PAD + 12) + (f >> 32);
  store<u32>(out, <u32>f, 12);
  memory.fill(st, 0, 96); // wipe the one-time key and state
}

/** One-shot Poly1305 (radix 2^26) of `len` bytes at `m` with the 32-byte key; tag to `out`. */
export function poly1305Mac(key: usize, m: usize, len: usize, out: usize): void {
  poly1305Init(key);
  const full = len & ~(<usize>15);
  blocks26(m, full, HIBIT26);
  if (len != full) finalPartial(m + full, len - full);
  poly1305Finish(out);
}

// ---- radix 2^44 variant (measured alternative) ----

const MASK44: u64 = 0xfffffffffff;
const MASK42: u64 = 0x3ffffffffff;
const MASK32: u64 = 0xffffffff;

/** High 64 bits of the 128-bit product a * b (four 32 x 32 partial products). */
// @ts-ignore: decorator
@inline function mulHi(a: u64, b: u64): u64 {
  const a0 = a & MASK32, a1 = a >> 32, b0 = b & MASK32, b1 = b >> 32;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const middle = (p00 >> 32) + (p01 & MASK32) + (p10 & MASK32);
  return p11 + (p01 >> 32) + (p10 >> 32) + (middle >> 32);
}

/** One-shot Poly1305 with radix 2^44 limbs; same contract as poly1305Mac. */
export function poly1305Mac44(key: usize, m: usize, len: usize, out: usize): void {
  const t0 = load<u64>(key, 0), t1 = load<u64>(key, 8);
  const R0 = t0 & 0xffc0fffffff;
  const R1 = ((t0 >> 44) | (t1 << 20)) & 0xfffffc0ffff;
  const R2 = (t1 >> 24) & 0x00ffffffc0f;
  const S1 = R1 * 20, S2 = R2 * 20; // 2^132 = 4 * 2^130 = 4 * 5 mod p
  let H0: u64 = 0, H1: u64 = 0, H2: u64 = 0;
  let p = m;
  let n = len;
  while (n != 0) {
    let m0: u64, m1: u64, hibit: u64;
    if (n >= 16) {
      m0 = load<u64>(p, 0);
      m1 = load<u64>(p, 8);
      hibit = <u64>1 << 40;
      p += 16;
      n -= 16;
    } else {
      memory.fill(PARTIAL_BLOCK, 0, 16);
      memory.copy(PARTIAL_BLOCK, p, n);
      store<u8>(PARTIAL_BLOCK + n, 1);
      m0 = load<u64>(PARTIAL_BLOCK, 0);
      m1 = load<u64>(PARTIAL_BLOCK, 8);
      hibit = 0;
      n = 0;
    }
    H0 += m0 & MASK44;
    H1 += ((m0 >> 44) | (m1 << 20)) & MASK44;
    H2 += ((m1 >> 24) & MASK42) | hibit;
    // d = h * r as three 128-bit sums (lo, hi).
    let lo0 = H0 * R0, hi0 = mulHi(H0, R0);
    let t = H1 * S2; lo0 += t; hi0 += mulHi(H1, S2) + <u64>(lo0 < t);
    t = H2 * S1; lo0 += t; hi0 += mulHi(H2, S1) + <u64>(lo0 < t);
    let lo1 = H0 * R1, hi1 = mulHi(H0, R1);
    t = H1 * R0; lo1 += t; hi1 += mulHi(H1, R0) + <u64>(lo1 < t);
    t = H2 * S2; lo1 += t; hi1 += mulHi(H2, S2) + <u64>(lo1 < t);
    let lo2 = H0 * R2, hi2 = mulHi(H0, R2);
    t = H1 * R1; lo2 += t; hi2 += mulHi(H1, R1) + <u64>(lo2 < t);
    t = H2 * R0; lo2 += t; hi2 += mulHi(H2, R0) + <u64>(lo2 < t);
    // Carry: d0 >> 44 into d1, d1 >> 44 into d2, d2 >> 42 times 5 back into h0.
    let c = (lo0 >> 44) | (hi0 << 20);
    H0 = lo0 & MASK44;
    lo1 += c; hi1 += <u64>(lo1 < c);
    c = (lo1 >> 44) | (hi1 << 20);
    H1 = lo1 & MASK44;
    lo2 += c; hi2 += <u64>(lo2 < c);
    c = (lo2 >> 42) | (hi2 << 22);
    H2 = lo2 & MASK42;
    H0 += c * 5;
    c = H0 >> 44; H0 &= MASK44;
    H1 += c;
  }
  // Full carry, then h - p if h >= p.
  let c = H1 >> 44; H1 &= MASK44;
  H2 += c; c = H2 >> 42; H2 &= MASK42;
  H0 += c * 5; c = H0 >> 44; H0 &= MASK44;
  H1 += c; c = H1 >> 44; H1 &= MASK44;
  H2 += c; c = H2 >> 42; H2 &= MASK42;
  H0 += c * 5; c = H0 >> 44; H0 &= MASK44;
  H1 += c;
  let G0 = H0 + 5; c = G0 >> 44; G0 &= MASK44;
  let G1 = H1 + c; c = G1 >> 44; G1 &= MASK44;
  const G2 = H2 + c - (<u64>1 << 42);
  const useG: u64 = (G2 >> 63) - 1;
  const useH = ~useG;
  H0 = (H0 & useH) | (G0 & useG);
  H1 = (H1 & useH) | (G1 & useG);
  H2 = (H2 & useH) | (G2 & MASK42 & useG);
  // h + s mod 2^128.
  const s0 = load<u64>(key, 16), s1 = load<u64>(key, 24);
  const lo = H0 | (H1 << 44);
  const hi = (H1 >> 20) | (H2 << 24);
  const outLo = lo + s0;
  const outHi = hi + s1 + <u64>(outLo < s0);
  store<u64>(out, outLo, 0);
  store<u64>(out, outHi, 8);
}
