// Named limits (src/nbd/limits.ts) are enforced with errors or back-pressure, never with an
// allocation of a request's declared size, and the connection stays usable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../src/store/memory-store.js';
import { DelayFilter } from '../src/store/delay-filter.js';
import { Filter } from '../src/store/filter.js';
import type { MaybePromise, WriteData } from '../src/store/block-device.js';

/** Counts how many writes run at once (the most seen is what the limit must bound). */
class ConcurrencyProbe extends Filter {
  running = 0;
  mostRunning = 0;
  override write(data: WriteData, offsetBytes: number, fua: boolean): MaybePromise<void> {
    this.running += 1;
    this.mostRunning = Math.max(this.mostRunning, this.running);
    const done = Promise.resolve(super.write(data, offsetBytes, fua));
    return done.finally(() => {
      this.running -= 1;
    });
  }
}
import { startInProcessServer } from './helpers/inprocess-server.js';
import { CMD, FLAG, OPT, RawNbd, REP } from './helpers/raw-nbd.js';

const NBD_EINVAL = 22;
const NBD_EOVERFLOW = 75;
const NBD_ENOSPC = 28;

async function structuredSession(port: number): Promise<RawNbd> {
  const client = await RawNbd.connect(port);
  await client.greet();
  await client.option(OPT.structuredReply);
  client.structured = true;
  await client.go('disk0');
  return client;
}

test('limits: a write over the payload limit is refused and its payload skipped, without buffering it', async (t) => {
  const { port, server } = await startInProcessServer(t, { limits: { payloadBytesMax: 1024 * 1024 } });
  const client = await structuredSession(port);
  t.after(() => client.close());
  const rssBefore = process.memoryUsage().rss;
  const oversize = Buffer.alloc(8 * 1024 * 1024, 0x5a);
  client.request(CMD.write, 1n, 0n, BigInt(oversize.length), 0, oversize);
  const refused = await client.readReply();
  assert.equal(refused.cookie, 1n);
  assert.equal(refused.error, NBD_EINVAL);
  client.request(CMD.write, 2n, 0n, 4n, 0, Buffer.from('abcd'));
  assert.equal((await client.readReply()).error, 0, 'the next request after the skipped payload works');
  client.request(CMD.read, 3n, 0n, 4n);
  const read = await client.readReply();
  assert.equal(read.data.subarray(8).toString(), 'abcd');
  assert.equal(server.stats.writtenBytes, 4, 'the refused payload never reached the store');
  assert.ok(process.memoryUsage().rss - rssBefore < 64 * 1024 * 1024);
});

test('limits: a read over the limit is EINVAL, or EOVERFLOW with DF; past the end is EINVAL, a write past the end ENOSPC', async (t) => {
  const { port } = await startInProcessServer(t, { limits: { payloadBytesMax: 1024 * 1024 } });
  const client = await structuredSession(port);
  t.after(() => client.close());
  client.request(CMD.read, 1n, 0n, 2n * 1024n * 1024n);
  assert.equal((await client.readReply()).error, NBD_EINVAL);
  client.request(CMD.read, 2n, 0n, 2n * 1024n * 1024n, FLAG.df);
  assert.equal((await client.readReply()).error, NBD_EOVERFLOW);
  client.request(CMD.read, 3n, 64n * 1024n * 1024n - 512n, 1024n);
  assert.equal((await client.readReply()).error, NBD_EINVAL);
  client.request(CMD.write, 4n, 64n * 1024n * 1024n - 512n, 1024n, 0, Buffer.alloc(1024));
  assert.equal((await client.readReply()).error, NBD_ENOSPC);
  client.request(CMD.read, 5n, 0n, 512n);
  assert.equal((await client.readReply()).error, 0);
});

test('limits: more requests than inflightRequestsMax are all answered (the server waits, it does not drop)', async (t) => {
  const device = new ConcurrencyProbe(new DelayFilter(new MemoryStore(16 * 1024 * 1024), { readDelayMs: 5, writeDelayMs: 5 }));
  const { port } = await startInProcessServer(t, { device, limits: { inflightRequestsMax: 4 } });
  const client = await structuredSession(port);
  t.after(() => client.close());
  const requests = 200;
  for (let i = 0; i < requests; i += 1) {
    const payload = Buffer.alloc(4096, i & 0xff);
    client.request(CMD.write, BigInt(i), BigInt(i * 4096), 4096n, 0, payload);
  }
  const seen = new Set<bigint>();
  for (let i = 0; i < requests; i += 1) {
    const reply = await client.readReply();
    assert.equal(reply.error, 0);
    seen.add(reply.cookie);
  }
  assert.equal(seen.size, requests, 'every cookie answered once');
  assert.equal(device.mostRunning, 4, 'never more than inflightRequestsMax at once, and the limit was reached');
  client.request(CMD.read, 999n, 199n * 4096n, 4096n);
  const read = await client.readReply();
  assert.ok(read.data.subarray(8).equals(Buffer.alloc(4096, 199)));
});

test('limits: connections over connectionsMax are told why (ERR_POLICY) and others keep working', async (t) => {
  const { port } = await startInProcessServer(t, { limits: { connectionsMax: 2 } });
  const first = await structuredSession(port);
  const second = await structuredSession(port);
  const third = await RawNbd.connect(port);
  t.after(() => [first, second, third].forEach((c) => c.close()));
  await third.greet();
  const refused = await third.option(OPT.go, RawNbd.infoData('disk0'));
  assert.equal(refused[0]!.type, REP.errPolicy);
  assert.match(refused[0]!.data.toString(), /too many connections/);
  first.request(CMD.read, 1n, 0n, 512n);
  assert.equal((await first.readReply()).error, 0);
  first.close();
  await new Promise((r) => setTimeout(r, 100));
  const fourth = await structuredSession(port);
  t.after(() => fourth.close());
  fourth.request(CMD.read, 2n, 0n, 512n);
  assert.equal((await fourth.readReply()).error, 0, 'a slot freed by a closed connection is reused');
});

test('limits: an option over optionBytesMax is skipped with ERR_TOO_BIG; an unknown option gets ERR_UNSUP; haggling goes on', async (t) => {
  const { port } = await startInProcessServer(t, { limits: { optionBytesMax: 1024 } });
  const client = await RawNbd.connect(port);
  t.after(() => client.close());
  await client.greet();
  client.sendOption(OPT.info, Buffer.alloc(100_000));
  assert.equal((await client.readOptionReply()).type, REP.errTooBig);
  const unknown = await client.option(99);
  assert.equal(unknown[0]!.type, REP.errUnsup);
  const { sizeBytes } = await client.go('disk0');
  assert.equal(sizeBytes, 64n * 1024n * 1024n);
});

test('limits: a handshake that stalls is closed after handshakeTimeoutMs', async (t) => {
  const { port, server } = await startInProcessServer(t, { limits: { handshakeTimeoutMs: 300 } });
  const client = await RawNbd.connect(port);
  t.after(() => client.close());
  await client.read(18);
  assert.equal(await client.closedWithin(3000), true);
  // The server's own close handler runs just after the client sees the close: wait for it.
  const deadline = Date.now() + 2000;
  while (server.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(server.connectionCount, 0, 'the stalled connection no longer holds a slot');
});
