import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryStore, memoryChunkBytes } from '../src/store/memory-store.js';
import { ErrorFilter } from '../src/store/error-filter.js';
import { DelayFilter } from '../src/store/delay-filter.js';
import { StoreError, extentHoleFlag, extentZeroFlag } from '../src/store/block-device.js';
import { tempDir } from './helpers/tmp.js';

test('memory store: sparse chunks, zero and trim free them, extents report holes', () => {
  const store = new MemoryStore(1024 * 1024);
  store.write([Buffer.alloc(100, 1), Buffer.alloc(100, 2)], memoryChunkBytes - 100, false);
  assert.equal(store.allocatedBytes, 2 * memoryChunkBytes, 'a write across a chunk boundary allocates two chunks');
  const back = Buffer.alloc(200);
  store.read(back, memoryChunkBytes - 100);
  assert.ok(back.equals(Buffer.concat([Buffer.alloc(100, 1), Buffer.alloc(100, 2)])));
  store.trim(0, 2 * memoryChunkBytes, false);
  assert.equal(store.allocatedBytes, 0);
  store.write([Buffer.alloc(10, 9)], 5 * memoryChunkBytes, false);
  assert.deepEqual(store.extents(0, 1024 * 1024), [
    { offsetBytes: 0, lengthBytes: 5 * memoryChunkBytes, flags: extentHoleFlag | extentZeroFlag },
    { offsetBytes: 5 * memoryChunkBytes, lengthBytes: memoryChunkBytes, flags: 0 },
    { offsetBytes: 6 * memoryChunkBytes, lengthBytes: 10 * memoryChunkBytes, flags: extentHoleFlag | extentZeroFlag },
  ]);
});

test('error filter: fails exactly the chosen operations at the chosen rate, reproducibly from the seed', () => {
  const run = (seed: number): boolean[] => {
    const store = new ErrorFilter(new MemoryStore(1024 * 1024), { rate: 0.3, ops: ['read'], seed });
    const outcomes: boolean[] = [];
    for (let i = 0; i < 1000; i += 1) {
      try {
        store.read(Buffer.alloc(512), 0);
        outcomes.push(true);
      } catch (err) {
        assert.ok(err instanceof StoreError && err.code === 'EIO');
        outcomes.push(false);
      }
      store.write([Buffer.alloc(512)], 0, false); // writes are not in `ops`: never fail
    }
    return outcomes;
  };
  const first = run(7);
  const failures = first.filter((ok) => !ok).length;
  assert.ok(failures > 230 && failures < 370, `about 30 % of 1000 reads failed (${failures})`);
  assert.deepEqual(run(7), first, 'the same seed fails the same calls');
  assert.notDeepEqual(run(8), first);
});

test('error filter: with a trigger file, fails only while the file exists', (t) => {
  const trigger = join(tempDir(t), 'fail-now');
  const store = new ErrorFilter(new MemoryStore(1024 * 1024), { rate: 1, triggerPath: trigger, code: 'ENOSPC' });
  store.write([Buffer.alloc(512)], 0, false);
  writeFileSync(trigger, '');
  assert.throws(() => store.write([Buffer.alloc(512)], 0, false), (err: unknown) => err instanceof StoreError && err.code === 'ENOSPC');
  assert.throws(() => store.flush(), StoreError);
  rmSync(trigger);
  store.write([Buffer.alloc(512)], 0, false);
  assert.equal(store.injected, 2);
});

test('delay filter: operations complete after the delay, in parallel, with the data intact', async () => {
  const store = new DelayFilter(new MemoryStore(1024 * 1024), { readDelayMs: 50, writeDelayMs: 50 });
  const started = performance.now();
  await Promise.all([0, 1, 2, 3].map((i) => store.write([Buffer.alloc(512, i + 1)], i * 512, false)));
  const elapsedMs = performance.now() - started;
  assert.ok(elapsedMs >= 45 && elapsedMs < 200, `four delayed writes ran side by side in ${elapsedMs} ms`);
  const back = Buffer.alloc(2048);
  await store.read(back, 0);
  assert.deepEqual([back[0], back[512], back[1024], back[1536]], [1, 2, 3, 4]);
});
