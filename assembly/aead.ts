// ChaCha20-Poly1305 (RFC 8439 section 2.8) and XChaCha20-Poly1305
// (draft-irtf-cfrg-xchacha section 2.3), sealing and opening in place.
//
// Both directions make one pass over the data (`chachaBatches` with a MAC mode): ChaCha20 over four blocks
// at a time with Poly1305 stitched between its rounds. Open compares tags in constant time;
// on a mismatch it re-applies the keystream, so the buffer holds the ciphertext it came in
// with and no plaintext is released. Keys derived on the way (Poly1305 key, XChaCha
// subkey) are wiped before returning.

import { BATCH_BYTES, chacha20Block, chacha20Xor, chachaBatches, hchacha20, MAC_LEADING, MAC_TRAILING } from './chacha20';
import { poly1305Blocks, poly1305Finish, poly1305Init, poly1305Padded } from './poly1305';

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
  const counter = chachaBatches(key, 1, nonce, data, data, batches, MAC_TRAILING);
  if (batches != 0) poly1305Blocks(data + (batches - 1) * BATCH_BYTES, BATCH_BYTES);
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
  const counter = chachaBatches(key, 1, nonce, data, data, batches, MAC_LEADING);
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
