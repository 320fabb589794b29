/**
 * npm run bench:kernels — the wasm kernels against native peers, in the same run.
 *
 * Method: every contender processes the same blocks (64 KiB and 1 MiB) cycling through an
 * 8 MiB buffer of random bytes or of a compressible corpus built here from /usr/share/doc text
 * and /usr/bin binaries (interleaved in 16 KiB pieces, as a disk holds both). A round runs one
 * contender for BENCH_ROUND_MS and measures MB per CPU-second (process.cpuUsage, user +
 * system); contenders alternate within a round and the order flips every round; the table
 * shows medians of BENCH_ROUNDS rounds and ratios (wasm / peer, > 1 means wasm is faster).
 * The wasm kernels run zero-copy (data already in wasm memory, as the frame pipeline uses
 * them); the one-shot API that copies in and out is measured separately. Pool scaling is MB
 * per wall-second, 2 workers against 1.
 *
 * Writes bench/results/kernels.json and bench/results/kernels.svg.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as zlib from 'node:zlib';
import { buildCorpus } from './lib/corpus.js';
import {
  chacha20poly1305Seal,
  crc32c,
  FrameCodec,
  KernelInstance,
  KernelPool,
  lz4CompressBound,
  ZstdContext,
} from '../src/kernels/index.js';
import { median } from './lib/stats.js';
import { writeReport, type BenchRow } from './lib/report.js';

const require = createRequire(import.meta.url);
const sse4 = require('sse4_crc32') as { calculate(data: Uint8Array): number; hardware_support: boolean };
const nodeRs = require('@node-rs/crc32') as { crc32c(data: Uint8Array): number };
const lz4napi = require('lz4-napi') as { compressSync(data: Buffer): Buffer; uncompressSync(data: Buffer): Buffer };
const zstdNapi = require('zstd-napi') as {
  Compressor: new () => { setParameters(p: { compressionLevel: number }): void; compress(data: Uint8Array): Buffer };
  Decompressor: new () => { decompress(data: Uint8Array): Buffer };
};
const zlibCrc32 = (zlib as unknown as { crc32?: (data: Uint8Array) => number }).crc32;

const roundsCount = Number(process.env['BENCH_ROUNDS'] ?? 7);
const roundMs = Number(process.env['BENCH_ROUND_MS'] ?? 150);
const warmupMs = 60;
const corpusBytes = 8 * 1024 * 1024;
const corpusPieceBytes = 16 * 1024;
const blockSizes = [64 * 1024, 1024 * 1024];
const mb = 1e6;
const resultsPath = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'bench', 'results', 'kernels.json');

const targets = {
  crc32c: 1500,
  chacha20poly1305: 800,
  lz4Compress: 400,
  lz4Decompress: 1500,
  lz4Ratio: 1.8,
};

function progress(text: string): void {
  process.stderr.write(`${text}\n`);
}

// ---- data ----

// ---- measurement ----

interface Contender {
  name: string;
  /** Processes the block with this index (cycling through the data). */
  run(block: number): void;
}

function measure(contender: Contender, blockBytes: number, blocks: number, durationMs: number, start: { block: number }): number {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let calls = 0;
  do {
    contender.run(start.block);
    start.block = (start.block + 1) % blocks;
    calls++;
  } while (performance.now() - t0 < durationMs);
  const used = process.cpuUsage(cpu0);
  return (calls * blockBytes) / mb / ((used.user + used.system) / 1e6);
}

const rows: BenchRow[] = [];
const rawResults: Record<string, Record<string, number[]>> = {};

/** Runs ours and the peers in alternating rounds and adds one row per peer. */
function compare(label: string, blockBytes: number, blocks: number, ours: Contender, peers: Contender[]): void {
  const contenders = [ours, ...peers];
  const positions = new Map(contenders.map((c) => [c, { block: 0 }]));
  for (const c of contenders) measure(c, blockBytes, blocks, warmupMs, positions.get(c)!);
  const values = new Map<Contender, number[]>(contenders.map((c) => [c, []]));
  for (let round = 0; round < roundsCount; round++) {
    const order = round % 2 === 0 ? contenders : [...contenders].reverse();
    for (const c of order) values.get(c)!.push(measure(c, blockBytes, blocks, roundMs, positions.get(c)!));
  }
  rawResults[label] = Object.fromEntries(contenders.map((c) => [c.name, values.get(c)!]));
  const oursRounds = values.get(ours)!;
  for (const peer of peers) {
    const peerRounds = values.get(peer)!;
    rows.push({ name: label, unit: 'MB/CPU-s', ours: median(oursRounds), peer: median(peerRounds), oursRounds, peerRounds, peerName: peer.name });
  }
  progress(`${label}: ${contenders.map((c) => `${c.name} ${Math.round(median(values.get(c)!))}`).join(', ')}`);
}

const sizeName = (bytes: number): string => (bytes >= 1024 * 1024 ? `${bytes / 1024 / 1024} MiB` : `${bytes / 1024} KiB`);

// ---- main ----

const { corpus, description } = buildCorpus(corpusBytes, corpusPieceBytes);
const random = randomBytes(corpusBytes);
progress(`corpus: ${description}`);

// One instance holding both data sets, the compressed blocks and scratch (zero-copy runs).
const k = new KernelInstance({ memoryBytes: 96 * 1024 * 1024 });
const dataRegion = { corpus: k.reserve(corpusBytes), random: k.reserve(corpusBytes) };
dataRegion.corpus.view.set(corpus);
dataRegion.random.view.set(random);
const aeadRegion = k.reserve(corpusBytes);
aeadRegion.view.set(random);
const sealedRegion = k.reserve(corpusBytes);
const workRegion = k.reserve(1024 * 1024);
const compressedRegion = k.reserve(lz4CompressBound(corpusBytes) + 1024 * 1024);
const outRegion = k.reserve(lz4CompressBound(1024 * 1024));
const keyRegion = k.reserve(32);
const nonceRegion = k.reserve(24);
const tagRegion = k.reserve(16);
const key = randomBytes(32);
const nonce = randomBytes(12);
keyRegion.view.set(key);
nonceRegion.view.set(nonce);
const source = { corpus, random } as const;
const ratios: Record<string, { wasm: number; lz4napi: number }> = {};

for (const size of blockSizes) {
  const blocks = corpusBytes / size;
  for (const kind of ['random', 'corpus'] as const) {
    const data = source[kind];
    const region = dataRegion[kind];
    const bufferOf = (block: number): Buffer => data.subarray(block * size, (block + 1) * size);
    compare(`CRC32C ${sizeName(size)} ${kind}`, size, blocks, { name: 'wasm', run: (b) => k.crc32cAt(region.ptr + b * size, size) }, [
      { name: sse4.hardware_support ? 'sse4_crc32 (SSE4.2 crc32 instruction)' : 'sse4_crc32 (table)', run: (b) => sse4.calculate(bufferOf(b)) },
      { name: '@node-rs/crc32', run: (b) => nodeRs.crc32c(bufferOf(b)) },
      ...(zlibCrc32 === undefined ? [] : [{ name: 'zlib.crc32 (CRC-32, not C)', run: (b: number) => zlibCrc32(bufferOf(b)) }]),
    ]);
  }

  // AEAD (speed does not depend on the data).
  const aeadBuffer = (block: number): Buffer => random.subarray(block * size, (block + 1) * size);
  const nodeSeal = (cipherName: 'chacha20-poly1305' | 'aes-256-gcm') => (block: number) => {
    const cipher = createCipheriv(cipherName, key, nonce, { authTagLength: 16 } as never) as unknown as {
      update(d: Buffer): Buffer;
      final(): Buffer;
      getAuthTag(): Buffer;
    };
    cipher.update(aeadBuffer(block));
    cipher.final();
    cipher.getAuthTag();
  };
  compare(
    `ChaCha20-Poly1305 seal ${sizeName(size)}`,
    size,
    blocks,
    { name: 'wasm', run: (b) => k.sealAt(false, keyRegion.ptr, nonceRegion.ptr, keyRegion.ptr, 0, aeadRegion.ptr + b * size, size, tagRegion.ptr) },
    [
      { name: 'node:crypto chacha20-poly1305', run: nodeSeal('chacha20-poly1305') },
      { name: 'node:crypto aes-256-gcm', run: nodeSeal('aes-256-gcm') },
    ],
  );
  // Open: verify the tag, then decrypt. Every block is sealed once; since wasm opens in place,
  // each lap first copies the sealed block into a work area (as a receiver copies a frame in),
  // and that copy is counted against wasm.
  const sealedTags = Array.from({ length: blocks }, (_, b) => {
    k.sealAt(false, keyRegion.ptr, nonceRegion.ptr, keyRegion.ptr, 0, aeadRegion.ptr + b * size, size, tagRegion.ptr);
    return Buffer.from(tagRegion.view);
  });
  sealedRegion.view.set(aeadRegion.view);
  const nodeSealed = Array.from({ length: blocks }, (_, b) => {
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    const ct = Buffer.concat([c.update(aeadBuffer(b)), c.final()]);
    return { ct, tag: c.getAuthTag() };
  });
  compare(
    `ChaCha20-Poly1305 open ${sizeName(size)}`,
    size,
    blocks,
    {
      name: 'wasm (incl. copy in)',
      run: (b) => {
        k.bytes.copyWithin(workRegion.ptr, sealedRegion.ptr + b * size, sealedRegion.ptr + (b + 1) * size);
        tagRegion.view.set(sealedTags[b]!);
        k.openAt(false, keyRegion.ptr, nonceRegion.ptr, keyRegion.ptr, 0, workRegion.ptr, size, tagRegion.ptr);
      },
    },
    [
      {
        name: 'node:crypto chacha20-poly1305',
        run: (b) => {
          const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
          d.setAuthTag(nodeSealed[b]!.tag);
          d.update(nodeSealed[b]!.ct);
          d.final();
        },
      },
    ],
  );
  compare(
    `ChaCha20 keystream XOR ${sizeName(size)}`,
    size,
    blocks,
    { name: 'wasm', run: (b) => k.exports.chacha20Xor(keyRegion.ptr, 1, nonceRegion.ptr, aeadRegion.ptr + b * size, aeadRegion.ptr + b * size, size) },
    [
      {
        name: 'node:crypto chacha20',
        run: (b) => {
          const c = createCipheriv('chacha20', key, Buffer.concat([Buffer.from([1, 0, 0, 0]), nonce]));
          c.update(aeadBuffer(b));
          c.final();
        },
      },
    ],
  );
  compare(
    `Poly1305 ${sizeName(size)}`,
    size,
    blocks,
    { name: 'wasm radix 2^26', run: (b) => k.exports.poly1305Mac(keyRegion.ptr, aeadRegion.ptr + b * size, size, tagRegion.ptr) },
    [{ name: 'wasm radix 2^44', run: (b) => k.exports.poly1305Mac44(keyRegion.ptr, aeadRegion.ptr + b * size, size, tagRegion.ptr) }],
  );

  // LZ4.
  for (const kind of ['random', 'corpus'] as const) {
    const data = source[kind];
    const region = dataRegion[kind];
    const bufferOf = (block: number): Buffer => data.subarray(block * size, (block + 1) * size);
    compare(
      `LZ4 compress ${sizeName(size)} ${kind}`,
      size,
      blocks,
      { name: 'wasm', run: (b) => k.lz4CompressAt(region.ptr + b * size, size, outRegion.ptr, outRegion.sizeBytes) },
      [{ name: 'lz4-napi', run: (b) => lz4napi.compressSync(bufferOf(b)) }],
    );
    // Compressed blocks for the decompressors: ours in wasm memory, lz4-napi's with its prefix.
    const ours: { ptr: number; len: number }[] = [];
    let at = compressedRegion.ptr;
    let oursTotal = 0;
    let theirsTotal = 0;
    const theirs: Buffer[] = [];
    for (let b = 0; b < blocks; b++) {
      const len = k.lz4CompressAt(region.ptr + b * size, size, at, lz4CompressBound(size));
      ours.push({ ptr: at, len });
      at += len;
      oursTotal += len;
      const t = lz4napi.compressSync(bufferOf(b));
      theirs.push(t);
      theirsTotal += t.length - 4;
    }
    ratios[`${sizeName(size)} ${kind}`] = { wasm: corpusBytes / oursTotal, lz4napi: corpusBytes / theirsTotal };
    compare(
      `LZ4 decompress ${sizeName(size)} ${kind}`,
      size,
      blocks,
      { name: 'wasm', run: (b) => k.lz4DecompressAt(ours[b]!.ptr, ours[b]!.len, outRegion.ptr, size) },
      [{ name: 'lz4-napi', run: (b) => lz4napi.uncompressSync(theirs[b]!) }],
    );
  }
}

// zstd: zstd-codec (wasm, the customer's package) against zstd-napi (native), on the corpus.
const zstd = await ZstdContext.create({ sizeBytesMax: 1024 * 1024 });
for (const size of blockSizes) {
  const blocks = corpusBytes / size;
  const bufferOf = (block: number): Buffer => corpus.subarray(block * size, (block + 1) * size);
  for (const level of [1, 3]) {
    const compressor = new zstdNapi.Compressor();
    compressor.setParameters({ compressionLevel: level });
    compare(`zstd L${level} compress ${sizeName(size)} corpus`, size, blocks, { name: 'zstd-codec (wasm)', run: (b) => zstd.compressWith(bufferOf(b), level, (o) => o.length) }, [
      { name: 'zstd-napi', run: (b) => compressor.compress(bufferOf(b)) },
    ]);
    const frames = Array.from({ length: blocks }, (_, b) => compressor.compress(bufferOf(b)));
    const decompressor = new zstdNapi.Decompressor();
    compare(`zstd L${level} decompress ${sizeName(size)} corpus`, size, blocks, { name: 'zstd-codec (wasm)', run: (b) => zstd.decompressWith(frames[b]!, size, (o) => o.length) }, [
      { name: 'zstd-napi', run: (b) => decompressor.decompress(frames[b]!) },
    ]);
  }
}

// The frame pipeline (CRC32C -> LZ4 if it helps -> ChaCha20-Poly1305) against the same steps
// done with native peers (sse4_crc32, lz4-napi, node:crypto).
const pipelineFrameBytesMax = 1024 * 1024;
const codec = await FrameCodec.create({
  key,
  cipher: 'chacha20-poly1305',
  codec: 'lz4',
  frameBytesMax: pipelineFrameBytesMax,
  ioRegions: false,
  extraMemoryBytes: 2 * corpusBytes + 4 * pipelineFrameBytesMax,
});
const pipeData = { corpus: codec.kernels.reserve(corpusBytes), random: codec.kernels.reserve(corpusBytes) };
pipeData.corpus.view.set(corpus);
pipeData.random.view.set(random);
const frameOut = codec.kernels.reserve(codec.sealedBytesMax);
const frameIn = codec.kernels.reserve(codec.sealedBytesMax);
const plainOut = codec.kernels.reserve(pipelineFrameBytesMax);
let nativeCounter = 0;
function nativeSeal(plaintext: Buffer): { body: Buffer; tag: Buffer; nonce: Buffer; compressed: boolean } {
  const crc = sse4.calculate(plaintext);
  const compressed = lz4napi.compressSync(plaintext);
  const useIt = compressed.length < plaintext.length - (plaintext.length >>> 5);
  const payload = useIt ? compressed : plaintext;
  const body = Buffer.allocUnsafe(4 + payload.length);
  body.writeUInt32LE(crc >>> 0, 0);
  payload.copy(body, 4);
  const n = Buffer.alloc(12);
  n.writeUInt32LE(nativeCounter++, 4);
  const c = createCipheriv('chacha20-poly1305', key, n, { authTagLength: 16 });
  const ct = Buffer.concat([c.update(body), c.final()]);
  return { body: ct, tag: c.getAuthTag(), nonce: n, compressed: useIt };
}
function nativeOpen(sealed: { body: Buffer; tag: Buffer; nonce: Buffer; compressed: boolean }): Buffer {
  const d = createDecipheriv('chacha20-poly1305', key, sealed.nonce, { authTagLength: 16 });
  d.setAuthTag(sealed.tag);
  const body = Buffer.concat([d.update(sealed.body), d.final()]);
  const payload = body.subarray(4);
  const plain = sealed.compressed ? lz4napi.uncompressSync(payload) : payload;
  if ((sse4.calculate(plain) >>> 0) !== body.readUInt32LE(0)) throw new Error('crc');
  return plain;
}
for (const size of blockSizes) {
  const blocks = corpusBytes / size;
  for (const kind of ['random', 'corpus'] as const) {
    const region = pipeData[kind];
    const bufferOf = (block: number): Buffer => source[kind].subarray(block * size, (block + 1) * size);
    compare(
      `frame seal ${sizeName(size)} ${kind}`,
      size,
      blocks,
      { name: 'wasm FrameCodec', run: (b) => codec.sealAt(region.ptr + b * size, size, frameOut.ptr, frameOut.sizeBytes) },
      [{ name: 'native steps (sse4_crc32 + lz4-napi + node:crypto)', run: (b) => nativeSeal(bufferOf(b)) }],
    );
    const frames = Array.from({ length: blocks }, (_, b) => {
      const len = codec.sealAt(region.ptr + b * size, size, frameOut.ptr, frameOut.sizeBytes);
      return Buffer.from(frameOut.view.subarray(0, len));
    });
    const nativeFrames = Array.from({ length: blocks }, (_, b) => nativeSeal(bufferOf(b)));
    compare(
      `frame open ${sizeName(size)} ${kind}`,
      size,
      blocks,
      {
        name: 'wasm FrameCodec',
        run: (b) => {
          // The frame is decrypted in place, so each lap copies it in first (as a receiver would).
          frameIn.view.set(frames[b]!);
          codec.openAt(frameIn.ptr, frames[b]!.length, plainOut.ptr, plainOut.sizeBytes);
        },
      },
      [{ name: 'native steps (sse4_crc32 + lz4-napi + node:crypto)', run: (b) => nativeOpen(nativeFrames[b]!) }],
    );
  }
}

// The one-shot API copies in and out of wasm memory: what that costs against zero-copy.
{
  const size = 1024 * 1024;
  const blocks = corpusBytes / size;
  const bufferOf = (block: number): Buffer => random.subarray(block * size, (block + 1) * size);
  compare(`CRC32C ${sizeName(size)} random, one-shot API (copies in)`, size, blocks, { name: 'wasm crc32c()', run: (b) => crc32c(bufferOf(b)) }, [
    { name: 'wasm zero-copy crc32cAt()', run: (b) => k.crc32cAt(dataRegion.random.ptr + b * size, size) },
  ]);
  compare(
    `ChaCha20-Poly1305 seal ${sizeName(size)}, one-shot API (copies in and out)`,
    size,
    blocks,
    { name: 'wasm chacha20poly1305Seal()', run: (b) => chacha20poly1305Seal(key, nonce, bufferOf(b)) },
    [{ name: 'wasm zero-copy sealAt()', run: (b) => k.sealAt(false, keyRegion.ptr, nonceRegion.ptr, keyRegion.ptr, 0, aeadRegion.ptr + b * size, size, tagRegion.ptr) }],
  );
}

// Pool scaling: frames sealed per wall-second with 1 and 2 workers (the machine has
// availableParallelism() cores, shared with other work).
async function poolRate(workers: number, size: number, durationMs: number): Promise<{ rate: number; cores: number }> {
  const pool = await KernelPool.start({ key, workers, frameBytesMax: 1024 * 1024, queueDepthMax: 4 * workers });
  const blocks = corpusBytes / size;
  let block = 0;
  const warmEnd = performance.now() + warmupMs;
  while (performance.now() < warmEnd) await pool.seal(corpus.subarray(0, size));
  let bytes = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const pending: Promise<Uint8Array>[] = [];
  while (performance.now() - t0 < durationMs) {
    await pool.whenWritable();
    pending.push(pool.seal(corpus.subarray(block * size, (block + 1) * size)));
    block = (block + 1) % blocks;
    bytes += size;
  }
  await Promise.all(pending);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await pool.close();
  return { rate: bytes / mb / seconds, cores: (cpu.user + cpu.system) / 1e6 / seconds };
}
const poolCores: Record<string, { oneWorker: number; twoWorkers: number }> = {};
for (const size of blockSizes) {
  const one: number[] = [];
  const two: number[] = [];
  const oneCores: number[] = [];
  const twoCores: number[] = [];
  for (let round = 0; round < roundsCount; round++) {
    for (const workers of round % 2 === 0 ? [1, 2] : [2, 1]) {
      const { rate, cores } = await poolRate(workers, size, roundMs * 3);
      (workers === 1 ? one : two).push(rate);
      (workers === 1 ? oneCores : twoCores).push(cores);
    }
  }
  poolCores[sizeName(size)] = { oneWorker: median(oneCores), twoWorkers: median(twoCores) };
  rows.push({ name: `pool seal ${sizeName(size)} corpus, 2 workers`, unit: 'MB/s wall', ours: median(two), peer: median(one), oursRounds: two, peerRounds: one, peerName: '1 worker' });
  progress(`pool ${sizeName(size)}: 1 worker ${Math.round(median(one))} MB/s on ${median(oneCores).toFixed(2)} cores, 2 workers ${Math.round(median(two))} MB/s on ${median(twoCores).toFixed(2)} cores`);
}

// ---- targets ----

const valueOf = (label: string): number => rows.find((r) => r.name === label)!.ours;
const worst = (labels: string[]): number => Math.min(...labels.map(valueOf));
const corpusLabels = (what: string): string[] => blockSizes.map((s) => `${what} ${sizeName(s)} corpus`);
const targetResults = {
  'CRC32C >= 1500 MB/CPU-s': worst(blockSizes.flatMap((s) => [`CRC32C ${sizeName(s)} random`, `CRC32C ${sizeName(s)} corpus`])) >= targets.crc32c,
  'ChaCha20-Poly1305 >= 800 MB/CPU-s': worst(blockSizes.map((s) => `ChaCha20-Poly1305 seal ${sizeName(s)}`)) >= targets.chacha20poly1305,
  'LZ4 compress >= 400 MB/CPU-s on the corpus': worst(corpusLabels('LZ4 compress')) >= targets.lz4Compress,
  'LZ4 decompress >= 1500 MB/CPU-s on the corpus': worst(corpusLabels('LZ4 decompress')) >= targets.lz4Decompress,
  'LZ4 ratio >= 1.8 on the corpus': Math.min(...blockSizes.map((s) => ratios[`${sizeName(s)} corpus`]!.wasm)) >= targets.lz4Ratio,
};
const notes = [
  `Corpus: ${description}.`,
  `Medians of ${roundsCount} alternating rounds of ${roundMs} ms; MB = 10^6 bytes; CPU time = user + system of the whole process.`,
  `Machine: ${availableParallelism()} CPUs (${cpus()[0]?.model ?? 'unknown'}), shared with other work: ratios within +-0.15 are ties.`,
  `LZ4 compression ratio (input / output, whole data set): ${Object.entries(ratios)
    .map(([name, r]) => `${name}: wasm ${r.wasm.toFixed(2)}, lz4-napi ${r.lz4napi.toFixed(2)}`)
    .join('; ')}.`,
  `Pool: CPU cores the whole process used (main thread + workers): ${Object.entries(poolCores)
    .map(([name, c]) => `${name}: ${c.oneWorker.toFixed(2)} with 1 worker, ${c.twoWorkers.toFixed(2)} with 2`)
    .join('; ')}; scaling is capped by the cores the shared machine leaves free.`,
  `Targets per core: ${Object.entries(targetResults)
    .map(([name, met]) => `${name}: ${met ? 'met' : 'NOT met'}`)
    .join('; ')}.`,
];
writeReport(resultsPath, {
  benchmark: 'kernels',
  peerName: 'native peer',
  date: new Date().toISOString(),
  host: { cpus: availableParallelism(), node: process.version },
  notes,
  rows,
  extra: { targets, targetResults, lz4Ratios: ratios, poolCores, rounds: rawResults },
});
process.stdout.write(`\n${notes.join('\n')}\n`);
