import { MirrorboxError } from '../util/errors.js';

/**
 * One-byte identifiers carried on the wire (frame header bytes 3 and 4; see FRAME.md).
 * Values are forever: add new ones, never renumber.
 */

export const codecIds = {
  /** Stored as is (compression did not help, or was not asked for). */
  raw: 0,
  /** One LZ4 block (assembly/lz4.ts). */
  lz4: 1,
  /** One zstd frame with its content size (zstd-codec). */
  zstd: 2,
} as const;
export type CodecName = keyof typeof codecIds;
export type CodecId = (typeof codecIds)[CodecName];

export const cipherIds = {
  /** ChaCha20-Poly1305, RFC 8439: 12-byte nonce. */
  'chacha20-poly1305': 1,
  /** XChaCha20-Poly1305, draft-irtf-cfrg-xchacha: 24-byte nonce. */
  'xchacha20-poly1305': 2,
} as const;
export type CipherName = keyof typeof cipherIds;
export type CipherId = (typeof cipherIds)[CipherName];

const codecNameById = new Map<number, CodecName>(Object.entries(codecIds).map(([name, id]) => [id, name as CodecName]));
const cipherNameById = new Map<number, CipherName>(Object.entries(cipherIds).map(([name, id]) => [id, name as CipherName]));

/** The codec name for a wire id, or undefined for an unknown id. */
export function codecNameOf(id: number): CodecName | undefined {
  return codecNameById.get(id);
}

/** The cipher name for a wire id, or undefined for an unknown id. */
export function cipherNameOf(id: number): CipherName | undefined {
  return cipherNameById.get(id);
}

/** Nonce length of a cipher in bytes. */
export function nonceBytesOf(cipher: CipherName | CipherId): 12 | 24 {
  return cipher === 'xchacha20-poly1305' || cipher === cipherIds['xchacha20-poly1305'] ? 24 : 12;
}

/** Parses a codec name from configuration; throws BAD_ARGUMENT otherwise. */
export function parseCodecName(text: string): CodecName {
  if (Object.hasOwn(codecIds, text)) return text as CodecName;
  throw new MirrorboxError('BAD_ARGUMENT', `unknown codec "${text}" (expected one of ${Object.keys(codecIds).join(', ')})`);
}

/** Parses a cipher name from configuration; throws BAD_ARGUMENT otherwise. */
export function parseCipherName(text: string): CipherName {
  if (Object.hasOwn(cipherIds, text)) return text as CipherName;
  throw new MirrorboxError('BAD_ARGUMENT', `unknown cipher "${text}" (expected one of ${Object.keys(cipherIds).join(', ')})`);
}
