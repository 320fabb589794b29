// LZ4 block format: compressor and a decompressor that is safe on any input.
//
// Block format (lz4_Block_format.md): a sequence is a token byte (high nibble: literal
// length, low nibble: match length - 4; 15 means "more length bytes follow, each added, until
// one is not 255"), the literals, a 2-byte little-endian offset (1..65535) and the match
// length extension. The last sequence has literals only. Compressors must keep the last 5
// bytes as literals and start no match within the last 12 bytes.
//
// Compressor: greedy, one hash table of positions (4-byte multiplicative hash), LZ4's skip
// acceleration on incompressible stretches, backward extension, forward extension with
// 64-bit XOR compares (count trailing zeros finds the first differing byte), and a check of
// output room before every sequence so a too-small destination just returns 0 ("does not
// fit") - the frame pipeline uses that to stop early on incompressible data.
//
// Decompressor: every read is checked against the input end and every write against the
// output capacity before it happens; wide (16-byte) copies are used only where the bounds
// leave room for the overshoot. Errors are negative return values, never traps.

export const LZ4_ERROR_TRUNCATED: i32 = -1; // input ends inside a sequence
export const LZ4_ERROR_OFFSET: i32 = -2; // match offset 0 or before the start of the output
export const LZ4_ERROR_OUTPUT: i32 = -3; // output would exceed the capacity given

const MIN_MATCH: usize = 4;
const LAST_LITERALS: usize = 5;
const MF_LIMIT: usize = 12;
const MAX_DISTANCE: usize = 65535;
const RUN_MASK: usize = 15;
const SKIP_TRIGGER: u32 = 6;
/** Literal runs up to this long are copied in 16-byte steps. */
const LITERAL_WIDE_COPY_MAX: usize = 128;
/** Length fields above this are rejected before they could overflow 32-bit arithmetic. */
const LENGTH_MAX: usize = 0x40000000;

/**
 * The hash table: 32 KiB either way (it stays in L1). Blocks up to 64 KiB store u16 positions,
 * so the same bytes hold twice the entries (better matches); larger blocks store u32.
 */
const HASH_TABLE_BYTES: usize = 32 * 1024;
const HASH_TABLE: usize = memory.data(<i32>HASH_TABLE_BYTES, 64);
/** Largest input that can use u16 positions. */
const SMALL_BLOCK_BYTES_MAX: usize = 65536;

/** The largest compressed size of `n` input bytes. */
export function lz4CompressBound(n: usize): usize {
  return n + n / 255 + 16;
}

/**
 * Table slot (byte offset) for the 5 bytes at a position (the low 5 bytes of a u64 load):
 * a multiplicative hash over 5 bytes separates more sequences than one over 4.
 */
// @ts-ignore: decorator
@inline function hashSlot<T>(sequence: u64): usize {
  const entryBytes = sizeof<T>();
  const hashLog: u64 = entryBytes == 2 ? 14 : 13; // HASH_TABLE_BYTES / entryBytes entries
  return <usize>(((sequence << 24) * 889523592379) >> (64 - hashLog)) * entryBytes;
}

/** Length of the common prefix of p.. and r.. (r < p), not reading at or past `limit`. */
// @ts-ignore: decorator
@inline function commonLength(p: usize, r: usize, limit: usize): usize {
  const start = p;
  let a = p;
  let b = r;
  while (a + 8 <= limit) {
    const difference = load<u64>(a) ^ load<u64>(b);
    if (difference != 0) return a + <usize>(ctz(difference) >> 3) - start;
    a += 8;
    b += 8;
  }
  if (a + 4 <= limit && load<u32>(a) == load<u32>(b)) { a += 4; b += 4; }
  if (a + 2 <= limit && load<u16>(a) == load<u16>(b)) { a += 2; b += 2; }
  if (a < limit && load<u8>(a) == load<u8>(b)) a++;
  return a - start;
}

/** Bytes needed to write a length's extension (after the 15 in the token). */
// @ts-ignore: decorator
@inline function extensionBytes(length: usize): usize {
  return length >= RUN_MASK ? (length - RUN_MASK) / 255 + 1 : 0;
}

/** Writes the extension bytes of `length` (>= 15) at op; returns the new op. */
function writeExtension(op: usize, length: usize): usize {
  let rest = length - RUN_MASK;
  let o = op;
  while (rest >= 255) {
    store<u8>(o++, 255);
    rest -= 255;
  }
  store<u8>(o++, <u8>rest);
  return o;
}

/**
 * Copies `n` literal bytes: in 16-byte steps when both sides have room for the overshoot
 * (literal runs are mostly short, and a memory.copy call costs more than the copy), else
 * with memory.copy.
 */
// @ts-ignore: decorator
@inline function copyLiterals(dst: usize, src: usize, n: usize, srcEnd: usize, dstEnd: usize): void {
  if (n <= LITERAL_WIDE_COPY_MAX && src + n + 16 <= srcEnd && dst + n + 16 <= dstEnd) {
    let d = dst;
    let s = src;
    const end = dst + n;
    do {
      v128.store(d, v128.load(s));
      d += 16;
      s += 16;
    } while (d < end);
  } else {
    memory.copy(dst, src, n);
  }
}

/**
 * Compresses `srcLen` bytes at `src` into at most `dstCap` bytes at `dst`.
 * Returns the compressed size, or 0 when it does not fit in dstCap (never for
 * dstCap >= lz4CompressBound(srcLen)). Empty input compresses to one zero token.
 */
export function lz4Compress(src: usize, srcLen: usize, dst: usize, dstCap: usize): usize {
  return srcLen <= SMALL_BLOCK_BYTES_MAX ? compressWith<u16>(src, srcLen, dst, dstCap) : compressWith<u32>(src, srcLen, dst, dstCap);
}

/** The compressor, for table entries of type T (u16 or u32 positions relative to src). */
function compressWith<T>(src: usize, srcLen: usize, dst: usize, dstCap: usize): usize {
  const iend = src + srcLen;
  const oend = dst + dstCap;
  let op = dst;
  let anchor = src;
  if (srcLen > MF_LIMIT) {
    memory.fill(HASH_TABLE, 0, HASH_TABLE_BYTES);
    const mflimit = iend - MF_LIMIT; // a match may start at or before this position
    const matchlimit = iend - LAST_LITERALS; // and must end at or before this one
    let ip = src + 1;
    let ref: usize = src;
    let more = true;
    while (more) {
      // Find a match: probe the table, skipping faster the longer nothing matches. The next
      // position's hash is computed before this one is checked (independent work for the CPU).
      let attempts: u32 = 1 << SKIP_TRIGGER;
      let forward = ip;
      let forwardSlot = hashSlot<T>(load<u64>(forward));
      let found = false;
      while (true) {
        const slot = forwardSlot;
        ip = forward;
        forward += <usize>(attempts++ >> SKIP_TRIGGER);
        if (forward > mflimit) break;
        ref = src + <usize>load<T>(HASH_TABLE + slot);
        forwardSlot = hashSlot<T>(load<u64>(forward));
        store<T>(HASH_TABLE + slot, <T>(ip - src));
        if (ip - ref <= MAX_DISTANCE && load<u32>(ref) == load<u32>(ip)) {
          found = true;
          break;
        }
      }
      if (!found) break;
      // Extend backwards over literals that also match.
      while (ip > anchor && ref > src && load<u8>(ip - 1) == load<u8>(ref - 1)) {
        ip--;
        ref--;
      }
      // Emit this match and any that follow immediately.
      while (true) {
        const litLen = ip - anchor;
        const matchLen = MIN_MATCH + commonLength(ip + MIN_MATCH, ref + MIN_MATCH, matchlimit);
        // Room for token, literals, offset and both length extensions: a cheap upper bound
        // first (x >> 7 >= x / 255), the exact count only near the end of the output.
        const room = oend - op;
        if (litLen + (litLen >> 7) + (matchLen >> 7) + 5 > room) {
          const needed: usize = <usize>1 + extensionBytes(litLen) + litLen + 2 + extensionBytes(matchLen - MIN_MATCH);
          if (needed > room) return 0;
        }
        const tokenAt = op++;
        let token: usize;
        if (litLen >= RUN_MASK) {
          token = RUN_MASK << 4;
          op = writeExtension(op, litLen);
        } else {
          token = litLen << 4;
        }
        copyLiterals(op, anchor, litLen, iend, oend);
        op += litLen;
        store<u16>(op, <u16>(ip - ref));
        op += 2;
        if (matchLen - MIN_MATCH >= RUN_MASK) {
          token |= RUN_MASK;
          op = writeExtension(op, matchLen - MIN_MATCH);
        } else {
          token |= matchLen - MIN_MATCH;
        }
        store<u8>(tokenAt, <u8>token);
        ip += matchLen;
        anchor = ip;
        if (ip > mflimit) {
          more = false;
          break;
        }
        // Index a position inside the match, then try a match right here.
        store<T>(HASH_TABLE + hashSlot<T>(load<u64>(ip - 2)), <T>(ip - 2 - src));
        const slot = HASH_TABLE + hashSlot<T>(load<u64>(ip));
        ref = src + <usize>load<T>(slot);
        store<T>(slot, <T>(ip - src));
        if (ip - ref > MAX_DISTANCE || load<u32>(ref) != load<u32>(ip)) break;
      }
      ip++;
    }
  }
  // The final literals.
  const litLen = iend - anchor;
  if (<usize>1 + extensionBytes(litLen) + litLen > oend - op) return 0;
  if (litLen >= RUN_MASK) {
    store<u8>(op++, <u8>(RUN_MASK << 4));
    op = writeExtension(op, litLen);
  } else {
    store<u8>(op++, <u8>(litLen << 4));
  }
  memory.copy(op, anchor, litLen);
  op += litLen;
  return op - dst;
}

/**
 * Decompresses the block of `srcLen` bytes at `src` into at most `dstCap` bytes at `dst`.
 * Returns the decompressed size, or LZ4_ERROR_* (< 0) on any malformed input. Never reads
 * outside [src, src + srcLen) nor writes outside [dst, dst + dstCap).
 */
export function lz4Decompress(src: usize, srcLen: usize, dst: usize, dstCap: usize): i32 {
  const iend = src + srcLen;
  const oend = dst + dstCap;
  let ip = src;
  let op = dst;
  while (true) {
    if (ip >= iend) return LZ4_ERROR_TRUNCATED;
    const token = <usize>load<u8>(ip++);
    // Literals.
    let litLen = token >> 4;
    if (litLen == RUN_MASK) {
      let b: usize;
      do {
        if (ip >= iend) return LZ4_ERROR_TRUNCATED;
        b = <usize>load<u8>(ip++);
        litLen += b;
        if (litLen > LENGTH_MAX) return LZ4_ERROR_OUTPUT;
      } while (b == 255);
    }
    if (litLen > iend - ip) return LZ4_ERROR_TRUNCATED;
    if (litLen > oend - op) return LZ4_ERROR_OUTPUT;
    if (litLen <= 32 && iend - ip >= 32 && oend - op >= 32) {
      v128.store(op, v128.load(ip));
      v128.store(op, v128.load(ip, 16), 16);
    } else {
      memory.copy(op, ip, litLen);
    }
    ip += litLen;
    op += litLen;
    if (ip == iend) return <i32>(op - dst); // the last sequence has no match
    // Match.
    if (iend - ip < 2) return LZ4_ERROR_TRUNCATED;
    const offset = <usize>load<u16>(ip);
    ip += 2;
    if (offset == 0 || offset > op - dst) return LZ4_ERROR_OFFSET;
    let matchLen = token & RUN_MASK;
    if (matchLen == RUN_MASK) {
      let b: usize;
      do {
        if (ip >= iend) return LZ4_ERROR_TRUNCATED;
        b = <usize>load<u8>(ip++);
        matchLen += b;
        if (matchLen > LENGTH_MAX) return LZ4_ERROR_OUTPUT;
      } while (b == 255);
    }
    matchLen += MIN_MATCH;
    if (matchLen > oend - op) return LZ4_ERROR_OUTPUT;
    const mend = op + matchLen;
    let ref = op - offset;
    if (offset >= 16) {
      if (offset >= matchLen && matchLen > 64) {
        memory.copy(op, ref, matchLen); // no overlap
      } else if (oend - mend >= 16) {
        // 16-byte steps may overshoot mend by up to 15 bytes, which the room covers; each
        // step reads 16 bytes that were complete before it (offset >= 16).
        let o = op;
        do {
          v128.store(o, v128.load(ref));
          o += 16;
          ref += 16;
        } while (o < mend);
      } else {
        let o = op;
        while (mend - o >= 16) {
          v128.store(o, v128.load(ref));
          o += 16;
          ref += 16;
        }
        while (o < mend) store<u8>(o++, load<u8>(ref++));
      }
    } else if (offset == 1) {
      memory.fill(op, load<u8>(ref), matchLen);
    } else {
      // A short period d: copy bytes until the output holds (d' - d) bytes of the match, where
      // d' is the first multiple of d >= 16; from then on the byte d' back is the same as the
      // byte d back, so 16-byte steps from d' back never read what they write.
      const period: usize = (<usize>15 + offset) / offset * offset;
      let o = op;
      const head = min(matchLen, period - offset);
      const headEnd = o + head;
      while (o < headEnd) store<u8>(o++, load<u8>(ref++));
      while (mend - o >= 16) {
        v128.store(o, v128.load(o - period));
        o += 16;
      }
      while (o < mend) {
        store<u8>(o, load<u8>(o - offset));
        o++;
      }
    }
    op = mend;
  }
  return LZ4_ERROR_TRUNCATED; // unreachable
}
