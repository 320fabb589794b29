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

/**
 * Reads every stride-th file (at most pieceBytesMax of each, so no single file dominates)
 * until `bytesWanted` bytes are in; unreadable files are skipped.
 */
function sample(files: string[], stride: number, pieceBytesMax: number, bytesWanted: number, read: (path: string) => Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let bytes = 0;
  for (let i = 0; i < files.length && bytes < bytesWanted; i += Math.max(1, stride)) {
    try {
      const data = read(files[i]!).subarray(0, pieceBytesMax);
      parts.push(data);
      bytes += data.length;
    } catch {
      // not readable (or not gzip): skip
    }
  }
  return parts;
}

/** Text from /usr/share/doc (gzip'd files inflated) and binaries from /usr/bin, interleaved. */
export function buildCorpus(corpusBytes: number, corpusPieceBytes: number): { corpus: Buffer; description: string } {
  const docs = filesUnder('/usr/share/doc', 100000);
  const textParts = sample(docs, Math.floor(docs.length / 1000), 128 * 1024, corpusBytes, (path) =>
    path.endsWith('.gz') ? zlib.gunzipSync(readFileSync(path)) : readFileSync(path),
  );
  const binaries = filesUnder('/usr/bin', 100000);
  const binParts = sample(binaries, Math.floor(binaries.length / 48), 512 * 1024, corpusBytes, (path) => readFileSync(path));
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

