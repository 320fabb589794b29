// Extended headers (NBD_OPT_EXTENDED_HEADERS): no client installed here speaks them yet
// (libnbd 1.14, qemu 7.2), so these tests use the raw client in test/helpers/raw-nbd.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { MemoryStore } from '../src/store/memory-store.js';
import { startInProcessServer } from './helpers/inprocess-server.js';
import { CMD, FLAG, OPT, RawNbd, REP, REP_ERR } from './helpers/raw-nbd.js';

const NBD_EINVAL = 22;
const CHUNK_NONE = 0;
const CHUNK_OFFSET_DATA = 1;
const CHUNK_BLOCK_STATUS_EXT = 6;
const TX_BLOCK_STAT_PAYLOAD = 1 << 12;
const STATE_HOLE_ZERO = 3;

async function extendedSession(port: number, withMeta = true): Promise<RawNbd> {
  const client = await RawNbd.connect(port);
  await client.greet();
  const ack = await client.option(OPT.extendedHeaders);
  assert.equal(ack[0]!.type, REP.ack);
  if (withMeta) {
    const meta = await client.option(OPT.setMeta, RawNbd.metaData('disk0', ['base:allocation']));
    assert.equal(meta[0]!.type, REP.meta);
  }
  client.extended = true;
  client.structured = true;
  return client;
}

test('extended headers: write and read back with 64-bit headers and extended replies', async (t) => {
  const { port } = await startInProcessServer(t);
  const client = await extendedSession(port);
  t.after(() => client.close());
  const { flags } = await client.go('disk0');
  assert.ok(flags & TX_BLOCK_STAT_PAYLOAD, 'BLOCK_STAT_PAYLOAD is advertised with extended headers');

  const data = randomBytes(300_000);
  client.request(CMD.write, 7n, 4096n, BigInt(data.length), FLAG.fua, data);
  const written = await client.readReply();
  assert.equal(written.cookie, 7n);
  assert.equal(written.type, CHUNK_NONE, 'success is an extended NONE chunk, never a simple reply');
  assert.equal(written.error, 0);

  client.request(CMD.read, 8n, 4096n, BigInt(data.length));
  const read = await client.readReply();
  assert.equal(read.type, CHUNK_OFFSET_DATA);
  assert.equal(read.data.readBigUInt64BE(0), 4096n);
  assert.ok(read.data.subarray(8).equals(data), 'bytes read back equal bytes written');
});

test('extended headers: 64-bit trim and zero lengths over a 8 GiB export, block status with a payload', async (t) => {
  const sizeBytes = 8 * 1024 ** 3;
  const device = new MemoryStore(sizeBytes);
  const { port } = await startInProcessServer(t, { exports: [{ name: 'disk0', description: '', device }] });
  const client = await extendedSession(port);
  t.after(() => client.close());
  await client.go('disk0');

  // Data at 5 GiB, then a single zero request longer than 4 GiB over it.
  const data = Buffer.alloc(65536, 0xa5);
  client.request(CMD.write, 1n, 5n * 1024n ** 3n, 65536n, 0, data);
  assert.equal((await client.readReply()).error, 0);
  assert.equal(device.allocatedBytes, 65536);
  client.request(CMD.writeZeroes, 2n, 0n, 6n * 1024n ** 3n);
  assert.equal((await client.readReply()).error, 0, 'a 6 GiB zero in one request');
  assert.equal(device.allocatedBytes, 0, 'the zeroed range holds no data');

  // Block status with the payload form: effect length (64) + the context id we were given.
  const payload = Buffer.alloc(12);
  payload.writeBigUInt64BE(BigInt(sizeBytes), 0);
  payload.writeUInt32BE(1, 8);
  client.request(CMD.blockStatus, 3n, 0n, BigInt(payload.length), FLAG.payloadLen, payload);
  const status = await client.readReply();
  assert.equal(status.type, CHUNK_BLOCK_STATUS_EXT);
  assert.equal(status.data.readUInt32BE(4), 1, 'one descriptor');
  assert.equal(status.data.readBigUInt64BE(8), BigInt(sizeBytes), 'covers the whole export in one 64-bit extent');
  assert.equal(status.data.readBigUInt64BE(16), BigInt(STATE_HOLE_ZERO));
});

test('extended headers: a PAYLOAD_LEN request the server does not know is skipped by its length', async (t) => {
  const { port } = await startInProcessServer(t);
  const client = await extendedSession(port);
  t.after(() => client.close());
  await client.go('disk0');
  client.request(CMD.read, 1n, 0n, 16n, FLAG.payloadLen, Buffer.alloc(16, 0xee));
  const refused = await client.readReply();
  assert.equal(refused.error, NBD_EINVAL);
  client.request(CMD.read, 2n, 0n, 512n);
  const read = await client.readReply();
  assert.equal(read.cookie, 2n, 'the stream stayed in step after the skipped payload');
  assert.equal(read.error, 0);
});

test('extended headers: negotiating twice or structured replies afterwards is refused, session goes on', async (t) => {
  const { port } = await startInProcessServer(t);
  const client = await extendedSession(port, false);
  t.after(() => client.close());
  const again = await client.option(OPT.extendedHeaders);
  assert.ok(again[0]!.type >= REP_ERR);
  const structured = await client.option(OPT.structuredReply);
  assert.ok(structured[0]!.type >= REP_ERR);
  const { sizeBytes } = await client.go('disk0');
  assert.equal(sizeBytes, 64n * 1024n * 1024n);
});
