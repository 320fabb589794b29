// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven.
//
// Wasm has no carry-less multiply and no crc32 instruction, so this is slicing-by-16: sixteen
// 256-entry tables, where table k maps a byte to its CRC contribution when k more bytes
// follow it. One step consumes 16 bytes with 16 independent table loads and one XOR tree,
// so the loop-carried dependency is one step per 16 bytes instead of one per byte.
//
// State convention: `crc32cUpdate` works on the raw register (pre-inverted); callers
// start from `crc32cStart()` and end with `crc32cFinish(register)`. `crc32c(seed, ...)`
// takes and returns a finished CRC so that chunks can be chained like zlib's crc32.

const POLY_REFLECTED: u32 = 0x82f63b78;
const TABLE_COUNT: i32 = 16;
const TABLE_BYTES: i32 = 256 * 4;

/** Sixteen tables of 256 u32 each; table k at TABLES + k * 1024. */
const TABLES: usize = memory.data(TABLE_COUNT * TABLE_BYTES, 64);
/**
 * x^(2^k) mod P for k = 0..X2N_COUNT-1, for combine (reflected bit order). Combine needs
 * x^(8 * lenB) = product of x^(2^k) over the set bits k of 8 * lenB, so k runs up to 3 + 63
 * for a u64 length. The sequence is not periodic in 32 for this polynomial (x^(2^32) is
 * x^2, not x), so it cannot wrap at 32 as zlib's CRC-32 table does.
 */
const X2N_COUNT: i32 = 3 + 64;
const X2N: usize = memory.data(X2N_COUNT * 4, 16);

function initTables(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let bit = 0; bit < 8; bit++) c = (c >>> 1) ^ (POLY_REFLECTED & (0 - (c & 1)));
    store<u32>(TABLES + (<usize>i << 2), c);
  }
  for (let i: u32 = 0; i < 256; i++) {
    let c = load<u32>(TABLES + (<usize>i << 2));
    for (let k = 1; k < TABLE_COUNT; k++) {
      c = load<u32>(TABLES + (<usize>(c & 0xff) << 2)) ^ (c >>> 8);
      store<u32>(TABLES + <usize>(k * TABLE_BYTES) + (<usize>i << 2), c);
    }
  }
  // x^1 in reflected order is bit 30; each next entry squares the previous one.
  let p: u32 = 1 << 30;
  store<u32>(X2N, p);
  for (let k = 1; k < X2N_COUNT; k++) {
    p = multiplyModP(p, p);
    store<u32>(X2N + (<usize>k << 2), p);
  }
}
initTables();

// Byte j of a word (j = 0 is the lowest), scaled to a table index: ((w >> 8j) & 0xff) * 4.
// @ts-ignore: decorator
@inline function ix0(w: u32): usize { return <usize>((w << 2) & 0x3fc); }
// @ts-ignore: decorator
@inline function ix1(w: u32): usize { return <usize>((w >>> 6) & 0x3fc); }
// @ts-ignore: decorator
@inline function ix2(w: u32): usize { return <usize>((w >>> 14) & 0x3fc); }
// @ts-ignore: decorator
@inline function ix3(w: u32): usize { return <usize>((w >>> 22) & 0x3fc); }

/** The register value before any byte (all ones). */
export function crc32cStart(): u32 {
  return 0xffffffff;
}

/** The CRC of everything fed into `register` so far. */
export function crc32cFinish(register: u32): u32 {
  return ~register;
}

/** Feeds `len` bytes at `ptr` into the raw register and returns the new register. */
export function crc32cUpdate(register: u32, ptr: usize, len: usize): u32 {
  let crc = register;
  let p = ptr;
  let n = len;
  // Byte steps until p is 4-aligned, so the word loads below are aligned.
  while (n != 0 && (p & 3) != 0) {
    crc = load<u32>(TABLES + (<usize>((crc ^ load<u8>(p)) & 0xff) << 2)) ^ (crc >>> 8);
    p++;
    n--;
  }
  while (n >= 16) {
    const a = load<u32>(p) ^ crc;
    const b = load<u32>(p, 4);
    const c = load<u32>(p, 8);
    const d = load<u32>(p, 12);
    crc =
      load<u32>(ix0(a), TABLES + 15 * TABLE_BYTES) ^
      load<u32>(ix1(a), TABLES + 14 * TABLE_BYTES) ^
      load<u32>(ix2(a), TABLES + 13 * TABLE_BYTES) ^
      load<u32>(ix3(a), TABLES + 12 * TABLE_BYTES) ^
      load<u32>(ix0(b), TABLES + 11 * TABLE_BYTES) ^
      load<u32>(ix1(b), TABLES + 10 * TABLE_BYTES) ^
      load<u32>(ix2(b), TABLES + 9 * TABLE_BYTES) ^
      load<u32>(ix3(b), TABLES + 8 * TABLE_BYTES) ^
      load<u32>(ix0(c), TABLES + 7 * TABLE_BYTES) ^
      load<u32>(ix1(c), TABLES + 6 * TABLE_BYTES) ^
      load<u32>(ix2(c), TABLES + 5 * TABLE_BYTES) ^
      load<u32>(ix3(c), TABLES + 4 * TABLE_BYTES) ^
      load<u32>(ix0(d), TABLES + 3 * TABLE_BYTES) ^
      load<u32>(ix1(d), TABLES + 2 * TABLE_BYTES) ^
      load<u32>(ix2(d), TABLES + 1 * TABLE_BYTES) ^
      load<u32>(ix3(d), TABLES);
    p += 16;
    n -= 16;
  }
  while (n != 0) {
    crc = load<u32>(TABLES + (<usize>((crc ^ load<u8>(p)) & 0xff) << 2)) ^ (crc >>> 8);
    p++;
    n--;
  }
  return crc;
}

/** CRC32C of `len` bytes at `ptr`, continuing from the finished CRC `seed` (0 to start). */
export function crc32c(seed: u32, ptr: usize, len: usize): u32 {
  return ~crc32cUpdate(~seed, ptr, len);
}

/** a * b mod P, both polynomials in reflected bit order (bit 31 is x^0). */
function multiplyModP(a: u32, b: u32): u32 {
  if (a == 0) return 0;
  let m: u32 = 1 << 31;
  let product: u32 = 0;
  let bb = b;
  while (true) {
    if ((a & m) != 0) {
      product ^= bb;
      if ((a & (m - 1)) == 0) break;
    }
    m >>>= 1;
    bb = (bb >>> 1) ^ (POLY_REFLECTED & (0 - (bb & 1)));
  }
  return product;
}

/** x^(n * 2^k) mod P. */
function xPowerModP(n: u64, k: u32): u32 {
  let p: u32 = 1 << 31; // x^0
  let nn = n;
  let kk = k;
  while (nn != 0) {
    if ((nn & 1) != 0) p = multiplyModP(load<u32>(X2N + (<usize>kk << 2)), p);
    nn >>= 1;
    kk++;
  }
  return p;
}

/**
 * The CRC of A followed by B, from crc(A), crc(B) and B's length in bytes (finished CRCs).
 * Shifting crc(A) over lenB zero bytes is a multiplication by x^(8 * lenB) mod P; the
 * pre- and post-inversions cancel out because both CRCs carry them.
 */
export function crc32cCombine(crcA: u32, crcB: u32, lenB: u64): u32 {
  if (lenB == 0) return crcA;
  return multiplyModP(xPowerModP(lenB, 3), crcA) ^ crcB;
}
