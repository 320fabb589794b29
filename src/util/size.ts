import { MirrorboxError } from './errors.js';

/** Binary multipliers for the size suffixes the CLI accepts (K, M, G, T; optional "iB"/"B"). */
const multiplierBySuffix: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

/** The largest byte count a JS number holds exactly. */
export const sizeBytesMax = Number.MAX_SAFE_INTEGER;

/**
 * Parses "1G", "512M", "4096", "2TiB" into bytes (binary units, as qemu-img and nbdkit do).
 * Throws MirrorboxError BAD_SIZE on anything else.
 */
export function parseSizeBytes(text: string): number {
  const match = /^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!match) {
    throw new MirrorboxError('BAD_SIZE', `not a size: "${text}" (expected a number with an optional K, M, G or T suffix)`);
  }
  const digits = match[1]!;
  const suffix = match[2]!.toUpperCase();
  const sizeBytes = Number(digits) * multiplierBySuffix[suffix]!;
  if (!Number.isSafeInteger(sizeBytes)) {
    throw new MirrorboxError('BAD_SIZE', `size too large: "${text}"`);
  }
  return sizeBytes;
}

/** Formats bytes for people: 1073741824 → "1 GiB", 1536 → "1.5 KiB". */
export function formatSizeBytes(sizeBytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = sizeBytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1);
  return `${text} ${units[unit]}`;
}
