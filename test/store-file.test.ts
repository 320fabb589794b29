import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync, writeFileSync, chmodSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { FileStore } from '../src/store/file-store.js';
import { ErrorFilter } from '../src/store/error-filter.js';
import { sparseNative } from '../src/store/sparse-native.js';
import { extentHoleFlag, extentZeroFlag, StoreError, type BlockDevice } from '../src/store/block-device.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;
const holeZero = extentHoleFlag | extentZeroFlag;

function allocatedBytes(path: string): number {
  return statSync(path).blocks * 512;
}

test('file store: a new store is created sparse at its size, and reopens at the same size', async (t) => {
  const path = join(tempDir(t), 'disk.img');
  const store = FileStore.open({ path, sizeBytes: 64 * MiB });
  assert.equal(store.sizeBytes, 64 * MiB);
  assert.equal(statSync(path).size, 64 * MiB);
  assert.ok(allocatedBytes(path) < MiB, 'no blocks allocated for a new store');
  await store.close();
  const again = FileStore.open({ path });
  assert.equal(again.sizeBytes, 64 * MiB);
  await again.close();
});

test('file store: grows a smaller file to --size, refuses to shrink, refuses an empty file', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'disk.img');
  (await Promise.resolve(FileStore.open({ path, sizeBytes: MiB }))).close();
  const grown = FileStore.open({ path, sizeBytes: 4 * MiB });
  assert.equal(grown.sizeBytes, 4 * MiB);
  await grown.close();
  assert.throws(() => FileStore.open({ path, sizeBytes: MiB }), (err: unknown) => err instanceof StoreError && /refusing to shrink/.test(err.message));
  writeFileSync(join(dir, 'empty.img'), '');
  assert.throws(() => FileStore.open({ path: join(dir, 'empty.img') }), /empty; give --size/);
});

test('file store: a read-only store refuses writes with EPERM; an unreadable path is a clear error', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'disk.img');
  await FileStore.open({ path, sizeBytes: MiB }).close();
  const store = FileStore.open({ path, readOnly: true });
  assert.throws(() => store.write([Buffer.alloc(512)], 0, false), (err: unknown) => err instanceof StoreError && err.code === 'EPERM');
  await store.close();
  if (process.getuid?.() !== 0) {
    chmodSync(path, 0);
    assert.throws(() => FileStore.open({ path }), /cannot open store/);
  }
  assert.throws(() => FileStore.open({ path: join(dir, 'no', 'such', 'dir', 'x.img'), sizeBytes: MiB }), /cannot open store/);
});

for (const ioMode of ['sync', 'async', 'auto'] as const) {
  test(`file store (${ioMode} I/O): vectored writes of any split read back byte for byte`, async (t) => {
    const path = join(tempDir(t), 'disk.img');
    const store = FileStore.open({ path, sizeBytes: 8 * MiB, ioMode });
    t.after(() => store.close());
    const data = randomBytes(3 * MiB + 123);
    const pieces = [data.subarray(0, 1), data.subarray(1, 65536), data.subarray(65536, 2 * MiB), data.subarray(2 * MiB)];
    await store.write(pieces, 4096 + 7, false);
    const back = Buffer.alloc(data.length);
    await store.read(back, 4096 + 7);
    assert.ok(back.equals(data));
    const small = Buffer.alloc(100);
    await store.read(small, 0);
    assert.ok(small.equals(Buffer.alloc(100)), 'unwritten bytes read as zeros');
  });
}

test('file store: trim and zero punch holes that block status reports; NO_HOLE zeroes stay allocated', async (t) => {
  if (!sparseNative) return t.skip('the native sparse helper is not built here');
  const path = join(tempDir(t), 'disk.img');
  const store = FileStore.open({ path, sizeBytes: 16 * MiB });
  t.after(() => store.close());
  await store.write([randomBytes(8 * MiB)], 0, false);
  assert.deepEqual(await store.extents(0, 16 * MiB), [
    { offsetBytes: 0, lengthBytes: 8 * MiB, flags: 0 },
    { offsetBytes: 8 * MiB, lengthBytes: 8 * MiB, flags: holeZero },
  ]);
  await store.trim(MiB, MiB, false);
  await store.zero(4 * MiB, MiB, { mayTrim: true, fastOnly: false, fua: false });
  await store.zero(6 * MiB, MiB, { mayTrim: false, fastOnly: true, fua: true });
  const extents = await store.extents(0, 16 * MiB);
  assert.deepEqual(extents, [
    { offsetBytes: 0, lengthBytes: MiB, flags: 0 },
    { offsetBytes: MiB, lengthBytes: MiB, flags: holeZero },
    { offsetBytes: 2 * MiB, lengthBytes: 2 * MiB, flags: 0 },
    { offsetBytes: 4 * MiB, lengthBytes: MiB, flags: holeZero },
    { offsetBytes: 5 * MiB, lengthBytes: 3 * MiB, flags: 0 },
    { offsetBytes: 8 * MiB, lengthBytes: 8 * MiB, flags: holeZero },
  ]);
  for (const offset of [MiB, 4 * MiB, 6 * MiB]) {
    const back = Buffer.alloc(MiB, 0xff);
    await store.read(back, offset);
    assert.ok(back.equals(Buffer.alloc(MiB)), `zeros at ${offset}`);
  }
  assert.ok(allocatedBytes(path) <= 6 * MiB + 64 * 1024, 'the punched ranges freed their blocks');
  const partial = await store.extents(512 * 1024, 1024 * 1024);
  assert.deepEqual(partial, [
    { offsetBytes: 512 * 1024, lengthBytes: 512 * 1024, flags: 0 },
    { offsetBytes: MiB, lengthBytes: 512 * 1024, flags: holeZero },
  ]);
});

test('file store: flush and FUA share fdatasync calls when they overlap (group commit)', async (t) => {
  const path = join(tempDir(t), 'disk.img');
  const store = FileStore.open({ path, sizeBytes: 4 * MiB });
  t.after(() => store.close());
  const before = store.syncCount;
  const flushes = [];
  for (let i = 0; i < 20; i += 1) {
    store.write([Buffer.alloc(4096, i)], i * 4096, false);
    flushes.push(store.flush());
  }
  await Promise.all(flushes);
  const used = store.syncCount - before;
  assert.ok(used >= 1 && used <= 2, `20 overlapping flushes used ${used} fdatasync calls`);
  await store.flush();
  assert.equal(store.syncCount - before, used + 1, 'a flush after the others gets its own fdatasync');
});

test('file store: offers a file span for cached data (its bytes are the data), none in async mode, after close, or through a filter', async (t) => {
  const path = join(tempDir(t), 'disk.img');
  const store = FileStore.open({ path, sizeBytes: 8 * MiB });
  const data = randomBytes(2 * MiB);
  store.write([data], MiB, false);
  const span = store.fileSpan(MiB + 100, MiB);
  if (sparseNative) {
    assert.ok(span, 'freshly written data is in the page cache');
    assert.equal(span.offsetBytes, MiB + 100);
    assert.equal(span.lengthBytes, MiB);
    const bytes = Buffer.alloc(MiB);
    assert.equal(readSync(span.fd, bytes, 0, MiB, span.offsetBytes), MiB);
    assert.ok(bytes.equals(data.subarray(100, 100 + MiB)));
  } else {
    assert.equal(span, null, 'no native helper: no sendfile');
  }
  const filtered: BlockDevice = new ErrorFilter(store, { rate: 0 });
  assert.equal(filtered.fileSpan, undefined, 'filters do not forward spans');
  await store.close();
  assert.equal(store.fileSpan(MiB, MiB), null, 'a closed store offers nothing');
  const async = FileStore.open({ path, ioMode: 'async' });
  assert.equal(async.fileSpan(MiB, MiB), null, "'async' mode keeps every read off the event loop");
  await async.close();
});
