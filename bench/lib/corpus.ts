import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';

/**
 * A compressible corpus from this machine: text sampled evenly across /usr/share/doc (gzip'd
 * files inflated) and binaries sampled evenly across /usr/bin, interleaved in pieces, the
 * way a disk holds both. Deterministic for a given machine (sorted listings, fixed strides).
 */

/** Regular files under dir (symlinks are not followed: /usr/bin/X11 points back at /usr/bin). */
function filesUnder(dir: string, limit: number): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (out.length >= limit) return;
      const path = join(d, name);
      try {
        const st = lstatSync(path);
        if (st.isDirectory()) walk(path);
        else if (st.isFile() && st.size > 0) out.push(path);
      } catch {
        // unreadable: skip
      }
    }
  };
  walk(dir);
  return out;
}

/** Text from /usr/share/doc (gzip'd files inflated) and binaries from /usr/bin, interleaved. */
export function buildCorpus(corpusBytes: number, corpusPieceBytes: number): { corpus: Buffer; description: string } {
  // Text: an even sample across /usr/share/doc (gzip'd files inflated), at most 128 KiB of
  // each file, so no single changelog dominates.
  const docs = filesUnder('/usr/share/doc', 100000);
  const textPieceBytesMax = 128 * 1024;
  const docStride = Math.max(1, Math.floor(docs.length / 1000));
  const textParts: Buffer[] = [];
  let textBytes = 0;
  for (let i = 0; i < docs.length && textBytes < corpusBytes; i += docStride) {
    const path = docs[i]!;
    try {
      let data = readFileSync(path);
      if (path.endsWith('.gz')) data = zlib.gunzipSync(data);
      data = data.subarray(0, textPieceBytesMax);
      textParts.push(data);
      textBytes += data.length;
    } catch {
      // not readable or not gzip: skip
    }
  }
  // Binaries: an even sample across /usr/bin (every stride-th file), at most 512 KiB of each,
  // so no single program dominates.
  const binaries = filesUnder('/usr/bin', 100000);
  const binaryPieceBytesMax = 512 * 1024;
  const stride = Math.max(1, Math.floor(binaries.length / 48));
  const binParts: Buffer[] = [];
  let binBytes = 0;
  for (let i = 0; i < binaries.length && binBytes < corpusBytes; i += stride) {
    try {
      const data = readFileSync(binaries[i]!).subarray(0, binaryPieceBytesMax);
      binParts.push(data);
      binBytes += data.length;
    } catch {
      // skip
    }
  }
  const text = Buffer.concat(textParts);
  const bin = Buffer.concat(binParts);
  if (text.length < corpusBytes / 2 || bin.length < corpusBytes / 2) throw new Error('not enough text or binaries for the corpus');
  const corpus = Buffer.alloc(corpusBytes);
  for (let at = 0, piece = 0; at < corpusBytes; at += corpusPieceBytes, piece++) {
    const source = piece % 2 === 0 ? text : bin;
    const from = (Math.floor(piece / 2) * corpusPieceBytes) % (source.length - corpusPieceBytes);
    source.copy(corpus, at, from, from + corpusPieceBytes);
  }
  return {
    corpus,
    description: `${corpusBytes / 1024 / 1024} MiB: ${textParts.length} files of /usr/share/doc text and ${binParts.length} /usr/bin binaries, interleaved in ${corpusPieceBytes / 1024} KiB pieces`,
  };
}

