import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { decodeFrameHeader, FrameCodec, KernelPool, NonceSequence } from '../src/kernels/index.js';
import { hasCode } from '../src/util/errors.js';

// The worker pool: real worker threads, each with its own wasm instance.

const key = randomBytes(32);
const frameBytesMax = 512 * 1024;
const line = (i: number): string => `sector ${i} of volume mirror0 written at ${i * 3} ms\n`;
const text = Buffer.from(Array.from({ length: 20000 }, (_, i) => line(i)).join(''));

/** Plaintexts of very different sizes, so jobs finish out of submission order. */
function plaintexts(count: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => {
    const size = i % 3 === 0 ? frameBytesMax : i % 3 === 1 ? 100 + i : 20000 + i * 13;
    return i % 2 === 0 ? Buffer.from(text.subarray(i, i + size)) : randomBytes(size);
  });
}

async function withPool(options: Partial<Parameters<typeof KernelPool.start>[0]>, body: (pool: KernelPool) => Promise<void>): Promise<void> {
  const pool = await KernelPool.start({ key, frameBytesMax, ...options });
  try {
    await body(pool);
  } finally {
    await pool.close();
  }
}

test('the pool seals and opens in parallel and settles strictly in submission order', async () => {
  const receiver = await FrameCodec.create({ key, frameBytesMax });
  await withPool({ workers: 2, queueDepthMax: 64 }, async (pool) => {
    const inputs = plaintexts(48);
    const settled: number[] = [];
    const frames = await Promise.all(inputs.map((input, i) => pool.seal(input).then((frame) => (settled.push(i), frame))));
    assert.deepEqual(settled, inputs.map((_, i) => i), 'settled in submission order');
    frames.forEach((frame, i) => assert.ok(Buffer.from(receiver.open(frame)).equals(inputs[i]!), `frame ${i} opens to its plaintext`));
    // Nonce counters follow submission order.
    const counters = frames.map((frame) => Buffer.from(frame).readUInt32LE(16 + 16));
    assert.deepEqual(counters, counters.map((_, i) => counters[0]! + i));
    const opened = await Promise.all(frames.map((frame) => pool.open(frame)));
    opened.forEach((plain, i) => assert.ok(Buffer.from(plain).equals(inputs[i]!), `opened ${i}`));
    assert.equal(pool.stats.completed, 96);
  });
});

test('open failures come back typed and in order without disturbing other jobs', async () => {
  await withPool({ workers: 2 }, async (pool) => {
    const frames = await Promise.all(plaintexts(8).map((p) => pool.seal(p)));
    const tampered = Buffer.from(frames[3]!);
    tampered[tampered.length - 1]! ^= 1;
    const order: string[] = [];
    const results = await Promise.allSettled(
      [...frames.slice(0, 3), tampered, Buffer.from('not a frame at all'), ...frames.slice(4)].map((f, i) =>
        pool.open(f).then(
          (r) => (order.push(`ok${i}`), r),
          (e: unknown) => {
            order.push(`err${i}`);
            throw e;
          },
        ),
      ),
    );
    assert.deepEqual(order, ['ok0', 'ok1', 'ok2', 'err3', 'err4', 'ok5', 'ok6', 'ok7', 'ok8']);
    assert.ok(results[3]!.status === 'rejected' && hasCode(results[3]!.reason, 'AUTH_FAILED'));
    assert.ok(results[4]!.status === 'rejected' && hasCode(results[4]!.reason, 'BAD_FRAME'));
  });
});

test('the queue is bounded: QUEUE_FULL past queueDepthMax, whenWritable() for backpressure', async () => {
  await withPool({ workers: 1, slotsPerWorker: 1, queueDepthMax: 3 }, async (pool) => {
    const big = Buffer.from(text.subarray(0, frameBytesMax));
    const admitted = [pool.seal(big), pool.seal(big), pool.seal(big)];
    assert.equal(pool.pending, 3);
    assert.equal(pool.writable, false);
    await assert.rejects(pool.seal(big), (err: unknown) => hasCode(err, 'QUEUE_FULL'));
    await pool.whenWritable();
    assert.ok(pool.pending < 3);
    const more = pool.seal(big);
    await Promise.all([...admitted, more]);
    assert.equal(pool.pending, 0);
    await assert.rejects(pool.seal(Buffer.alloc(frameBytesMax + 1)), (err: unknown) => hasCode(err, 'TOO_LARGE'));
  });
});

test('a producer honouring whenWritable() never exceeds the bound', async () => {
  await withPool({ workers: 2, queueDepthMax: 5 }, async (pool) => {
    let maxPending = 0;
    const results: Promise<Uint8Array>[] = [];
    for (const input of plaintexts(40)) {
      await pool.whenWritable();
      results.push(pool.seal(input));
      maxPending = Math.max(maxPending, pool.pending);
    }
    await Promise.all(results);
    assert.ok(maxPending <= 5, `at most 5 pending, saw ${maxPending}`);
  });
});

test('seal and open streams deliver in order, and a slow reader holds the writer back', async () => {
  await withPool({ workers: 2, queueDepthMax: 4 }, async (pool) => {
    const inputs = plaintexts(30);
    const frames: Uint8Array[] = [];
    let maxPending = 0;
    // Items taken from the source but not yet consumed: without backpressure from the slow
    // reader the fast pool would pull the whole source at once.
    let pulled = 0;
    let maxAhead = 0;
    await pipeline(
      Readable.from(
        (function* () {
          for (const input of inputs) {
            pulled++;
            yield input;
          }
        })(),
        { highWaterMark: 1 },
      ),
      pool.sealStream(),
      new Writable({
        objectMode: true,
        highWaterMark: 1,
        write(frame: Uint8Array, _encoding, callback) {
          frames.push(frame);
          maxPending = Math.max(maxPending, pool.pending);
          maxAhead = Math.max(maxAhead, pulled - frames.length);
          setTimeout(callback, 5); // a slow consumer
        },
      }),
    );
    assert.equal(frames.length, inputs.length);
    assert.ok(maxPending <= 4, `pending stayed within the bound (saw ${maxPending})`);
    // Bound: queueDepthMax in flight + queueDepthMax buffered results + a few items in the
    // streams' own buffers (measured: at most 7 here; 24-26 without the hold on a full reader).
    assert.ok(maxAhead <= 2 * 4 + 5, `the source was read ${maxAhead} items ahead of the slow reader`);
    const opened: Buffer[] = [];
    await pipeline(
      Readable.from(frames),
      pool.openStream(),
      new Writable({
        objectMode: true,
        write(plain: Uint8Array, _encoding, callback) {
          opened.push(Buffer.from(plain));
          callback();
        },
      }),
    );
    opened.forEach((plain, i) => assert.ok(plain.equals(inputs[i]!), `stream item ${i}`));
  });
});

test('the pool survives a worker that throws: the worker is replaced and work goes on', async () => {
  const receiver = await FrameCodec.create({ key, frameBytesMax });
  await withPool({ workers: 2, queueDepthMax: 64 }, async (pool) => {
    const inputs = plaintexts(20);
    const before = inputs.slice(0, 10).map((p) => pool.seal(p));
    const crash = pool.injectWorkerCrash();
    const after = inputs.slice(10).map((p) => pool.seal(p));
    await assert.rejects(crash, (err: unknown) => hasCode(err, 'WORKER_FAILED'));
    const frames = await Promise.all([...before, ...after]);
    frames.forEach((frame, i) => assert.ok(Buffer.from(receiver.open(frame)).equals(inputs[i]!), `job ${i} sealed correctly`));
    assert.equal(pool.stats.workerRestarts, 1);
    // And again, twice in a row, with the pool busy.
    const busy = inputs.map((p) => pool.seal(p));
    const crashes = [pool.injectWorkerCrash(), pool.injectWorkerCrash()];
    for (const c of crashes) await assert.rejects(c, (err: unknown) => hasCode(err, 'WORKER_FAILED'));
    (await Promise.all(busy)).forEach((frame, i) => assert.ok(Buffer.from(receiver.open(frame)).equals(inputs[i]!)));
    assert.ok(pool.stats.workerRestarts >= 2, `restarts: ${pool.stats.workerRestarts}`); // two crashes on one worker are one restart
    const last = await pool.seal(text.subarray(0, 1000));
    assert.ok(Buffer.from(receiver.open(last)).equals(text.subarray(0, 1000)));
  });
});

test('a pool with a chosen nonce sequence and cipher; close() waits for pending jobs', async () => {
  const nonces = new NonceSequence('chacha20-poly1305', Buffer.from([9, 9, 9, 9]), 1000);
  const pool = await KernelPool.start({ key, frameBytesMax, cipher: 'chacha20-poly1305', codec: 'zstd', nonces, workers: 1 });
  const pending = plaintexts(6).map((p) => pool.seal(p));
  await pool.close();
  const frames = await Promise.all(pending);
  assert.equal(frames.length, 6);
  const header = decodeFrameHeader(frames[0]!, 0, frames[0]!.length, frameBytesMax);
  assert.equal(header.cipher, 'chacha20-poly1305');
  assert.equal(header.codec, 'zstd');
  assert.equal(Buffer.from(frames[0]!).subarray(16, 28).toString('hex'), '09090909' + 'e803000000000000');
  await assert.rejects(pool.seal(Buffer.alloc(1)), (err: unknown) => hasCode(err, 'POOL_CLOSED'));
  await assert.rejects(KernelPool.start({ key, workers: 0 }), (err: unknown) => hasCode(err, 'BAD_ARGUMENT'));
  // Refused before any worker starts, with the code FrameCodec gives (not WORKER_FAILED).
  await assert.rejects(KernelPool.start({ key: key.subarray(0, 31) }), (err: unknown) => hasCode(err, 'BAD_ARGUMENT'));
  await assert.rejects(KernelPool.start({ key, codec: 'zstd', zstdLevel: 42 }), (err: unknown) => hasCode(err, 'BAD_ARGUMENT'));
});

test('a worker that dies while close() drains is replaced: the jobs behind it still settle and close() returns', { timeout: 30_000 }, async () => {
  const receiver = await FrameCodec.create({ key, frameBytesMax });
  const pool = await KernelPool.start({ key, frameBytesMax, workers: 1, slotsPerWorker: 1 });
  const crash = pool.injectWorkerCrash();
  const inputs = plaintexts(3); // with the crash job: 4, the default queue depth for one slot
  const sealed = inputs.map((p) => pool.seal(p));
  const closed = pool.close();
  await assert.rejects(crash, (err: unknown) => hasCode(err, 'WORKER_FAILED'));
  const frames = await Promise.all(sealed);
  frames.forEach((frame, i) => assert.ok(Buffer.from(receiver.open(frame)).equals(inputs[i]!), `job ${i} sealed after the crash`));
  await closed;
});
