// Large read replies sent straight from the store file (sendfile, README "Sending"): the bytes a
// client gets are the file's bytes with every reply shape (simple, structured, extended), when the
// socket fills up part way through a reply (the client stops reading), when the range is not in
// the page cache (the copy path answers), behind a filter (never bypassed), on a Unix socket, when
// the client vanishes with replies queued, and when the server shuts down with replies queued.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { NbdServer } from '../src/nbd/server.js';
import { fileReplyBytesMin } from '../src/nbd/transmission.js';
import { ErrorFilter } from '../src/store/error-filter.js';
import { FileStore } from '../src/store/file-store.js';
import { sparseNative } from '../src/store/sparse-native.js';
import type { BlockDevice } from '../src/store/block-device.js';
import { randomFile, runOk, sha256 } from './helpers/nbd-clients.js';
import { startInProcessServer } from './helpers/inprocess-server.js';
import { CMD, OPT, REP, RawNbd, SIMPLE_REPLY, type Reply } from './helpers/raw-nbd.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;
const KiB = 1024;
const storeBytes = 64 * MiB;
const NBD_EIO = 5;
const CHUNK_OFFSET_DATA = 1;
/** Long enough for the server to fill the socket while the client does not read. */
const stopReadingMs = 300;

/** A store file of random bytes (freshly written, so in the page cache) served in-process. */
async function fileServer(t: TestContext, wrap: (store: FileStore) => BlockDevice = (s) => s) {
  const dir = tempDir(t);
  const path = join(dir, 'disk.img');
  const data = randomFile(path, storeBytes);
  const store = FileStore.open({ path });
  const { server, port } = await startInProcessServer(t, { device: wrap(store) });
  return { server, port, data, path, store };
}

/** Requests of every size class around the file-reply cut, at odd offsets. */
function requestPlan(count: number): Array<{ offset: number; length: number }> {
  const lengths = [MiB, 4 * KiB, fileReplyBytesMin, fileReplyBytesMin - 1, 3 * MiB + 513, 256 * KiB + 7];
  return Array.from({ length: count }, (_, i) => {
    const length = lengths[i % lengths.length]!;
    const offset = (i * 1_234_567 + (i % 3) * 4097) % (storeBytes - length);
    return { offset, length };
  });
}

async function session(port: number, kind: 'simple' | 'structured' | 'extended'): Promise<RawNbd> {
  const client = await RawNbd.connect(port);
  await client.greet();
  if (kind === 'structured') {
    assert.equal((await client.option(OPT.structuredReply))[0]!.type, REP.ack);
    client.structured = true;
  }
  if (kind === 'extended') {
    assert.equal((await client.option(OPT.extendedHeaders))[0]!.type, REP.ack);
    client.extended = true;
    client.structured = true;
  }
  await client.go('disk0');
  return client;
}

/** Reads one read reply; for simple replies the caller says how many data bytes follow. */
async function readData(client: RawNbd, simpleLength: number): Promise<Reply> {
  const reply = await client.readReply(client.structured ? 0 : simpleLength);
  assert.equal(reply.error, 0);
  return reply;
}

for (const kind of ['simple', 'structured', 'extended'] as const) {
  test(`${kind} replies: a client that stops reading mid-transfer gets every byte of the file, in order`, async (t) => {
    const { server, port, data } = await fileServer(t);
    const client = await session(port, kind);
    t.after(() => client.close());
    const plan = requestPlan(36);
    client.socket.pause();
    plan.forEach(({ offset, length }, i) => client.request(CMD.read, BigInt(i + 1), BigInt(offset), BigInt(length)));
    await sleep(stopReadingMs);
    client.socket.resume();
    // Every request completes synchronously here, so replies come in request order.
    for (const [i, { offset, length }] of plan.entries()) {
      const reply = await readData(client, length);
      assert.equal(reply.cookie, BigInt(i + 1));
      if (kind === 'simple') {
        assert.equal(reply.type, SIMPLE_REPLY);
        assert.ok(reply.data.equals(data.subarray(offset, offset + length)), `bytes of request ${i + 1}`);
      } else {
        assert.equal(reply.type, CHUNK_OFFSET_DATA);
        assert.equal(Number(reply.data.readBigUInt64BE(0)), offset, 'OFFSET_DATA names the request offset');
        assert.ok(reply.data.subarray(8).equals(data.subarray(offset, offset + length)), `bytes of request ${i + 1}`);
      }
    }
    const large = plan.filter((p) => p.length >= fileReplyBytesMin).length;
    assert.equal(server.stats.fileReplies, large, 'every read of fileReplyBytesMin or more went from the file');
    assert.ok(server.stats.fileReplyWaits > 0, 'the socket filled up during a file reply');
  });
}

test('a range not in the page cache is read through memory; once cached it is sent from the file', async (t) => {
  const { server, port, data, path } = await fileServer(t);
  const probeFd = openSync(path, 'r');
  t.after(() => closeSync(probeFd));
  const native = sparseNative;
  if (!native || native.isCached(probeFd, 0, MiB) === null) return t.skip('the kernel cannot tell page-cache residency (cachestat, Linux 6.5+)');
  // Write back and drop the file's pages (dd's nocache flag is posix_fadvise DONTNEED).
  execFileSync('dd', ['if=/dev/null', `of=${path}`, 'oflag=nocache', 'conv=notrunc,fdatasync', 'count=0'], { stdio: 'ignore' });
  assert.equal(native.isCached(probeFd, 8 * MiB, MiB), false, 'the pages were dropped');
  const client = await session(port, 'simple');
  t.after(() => client.close());
  client.request(CMD.read, 1n, BigInt(8 * MiB), BigInt(MiB));
  assert.ok((await readData(client, MiB)).data.equals(data.subarray(8 * MiB, 9 * MiB)));
  assert.equal(server.stats.fileReplies, 0, 'an uncached range is not sent from the file');
  client.request(CMD.read, 2n, BigInt(8 * MiB), BigInt(MiB));
  assert.ok((await readData(client, MiB)).data.equals(data.subarray(8 * MiB, 9 * MiB)));
  assert.equal(server.stats.fileReplies, 1, 'the same range, now cached, is');
});

test('a filter over the file store is never bypassed: injected read errors reach large reads', async (t) => {
  const { server, port } = await fileServer(t, (store) => new ErrorFilter(store, { rate: 1, ops: ['read'] }));
  const client = await session(port, 'structured');
  t.after(() => client.close());
  client.request(CMD.read, 1n, 0n, BigInt(MiB));
  const reply = await client.readReply();
  assert.equal(reply.error, NBD_EIO);
  assert.equal(server.stats.fileReplies, 0);
});

test('a client that vanishes with file replies queued leaves the server serving others', async (t) => {
  const { server, port, data } = await fileServer(t);
  const leaving = await session(port, 'structured');
  leaving.socket.pause();
  for (let i = 0; i < 48; i += 1) leaving.request(CMD.read, BigInt(i + 1), BigInt(i * MiB), BigInt(MiB));
  await sleep(stopReadingMs);
  leaving.close();
  await sleep(50);
  const other = await session(port, 'structured');
  t.after(() => other.close());
  for (let i = 0; i < 8; i += 1) {
    other.request(CMD.read, 1n, BigInt(i * MiB), BigInt(2 * MiB));
    assert.ok((await readData(other, 0)).data.subarray(8).equals(data.subarray(i * MiB, (i + 2) * MiB)));
  }
  assert.ok(server.stats.fileReplies > 8);
  const deadline = Date.now() + 5000;
  while (server.connectionCount > 1 && Date.now() < deadline) await sleep(20);
  assert.equal(server.connectionCount, 1, 'the vanished connection is gone');
});

test('shutdown with file replies queued sends them all before closing the connection', async (t) => {
  const { server, port, data } = await fileServer(t);
  const client = await session(port, 'structured');
  t.after(() => client.close());
  client.socket.pause();
  const count = 24;
  for (let i = 0; i < count; i += 1) client.request(CMD.read, BigInt(i + 1), BigInt(i * MiB), BigInt(MiB));
  await sleep(stopReadingMs);
  const closed = server.close(20_000);
  client.socket.resume();
  for (let i = 0; i < count; i += 1) {
    const reply = await readData(client, 0);
    assert.equal(reply.cookie, BigInt(i + 1));
    assert.ok(reply.data.subarray(8).equals(data.subarray(i * MiB, (i + 1) * MiB)), `bytes of request ${i + 1}`);
  }
  await closed;
  assert.ok(await client.closedWithin(5000), 'the server closed the connection after the last reply');
});

test('nbdcopy over a Unix socket copies the export byte for byte, large reads sent from the file', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'disk.img');
  const data = randomFile(path, storeBytes);
  const socketPath = join(dir, 'nbd.sock');
  const server = new NbdServer({
    exports: [{ name: 'disk0', description: 'test disk', device: FileStore.open({ path }) }],
    socketPath,
    log: pino({ level: 'silent' }),
  });
  await server.start();
  t.after(() => server.close(500));
  const copy = join(dir, 'copy.img');
  await runOk('nbdcopy', ['--request-size=1048576', `nbd+unix:///disk0?socket=${socketPath}`, copy]);
  assert.equal(sha256(readFileSync(copy)), sha256(data));
  assert.ok(server.stats.fileReplies > 0, 'nbdcopy 1 MiB reads were sent from the file');
});
