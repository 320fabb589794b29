// Multi-conn (NBD_FLAG_CAN_MULTI_CONN): a write made durable on one connection (FLUSH, or FUA)
// is seen by every other connection to the export, including ones opened before the write; and
// many requests in flight on several connections at once land where they should.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nbdsh } from './helpers/nbd-clients.js';
import { startServer } from './helpers/nbd-server.js';

test('a write + flush on one connection is read on another; so is a FUA write', async (t) => {
  const server = await startServer(t, { size: '32M' });
  const r = await nbdsh<{ multiConn: boolean[]; flushed: boolean; fua: boolean; overwritten: boolean }>(
    `
import random
a = nbd.NBD(); a.connect_uri(os.environ["URI"])
b = nbd.NBD(); b.connect_uri(os.environ["URI"])
before = b.pread(1024 * 1024, 3 * 1024 * 1024)     # b has looked at the range before the write
data = random.randbytes(1024 * 1024)
a.pwrite(data, 3 * 1024 * 1024)
a.flush()
flushed = b.pread(1024 * 1024, 3 * 1024 * 1024) == data
fua_data = random.randbytes(65536)
b.pwrite(fua_data, 7 * 1024 * 1024, nbd.CMD_FLAG_FUA)
fua = a.pread(65536, 7 * 1024 * 1024) == fua_data
# Overwrite what b read first, from b, and read it on a.
again = random.randbytes(4096)
b.pwrite(again, 3 * 1024 * 1024 + 4096); b.flush()
overwritten = a.pread(4096, 3 * 1024 * 1024 + 4096) == again and before == bytes(1024 * 1024)
result({"multiConn": [a.can_multi_conn(), b.can_multi_conn()], "flushed": flushed, "fua": fua, "overwritten": overwritten})
`,
    { URI: server.uri },
  );
  assert.deepEqual(r, { multiConn: [true, true], flushed: true, fua: true, overwritten: true });
});

test('four connections with 32 writes in flight each; a fifth connection reads every one back', async (t) => {
  const server = await startServer(t, { size: '64M' });
  const r = await nbdsh<{ mismatches: number; writes: number }>(
    `
import random
conns = []
for _ in range(4):
    c = nbd.NBD(); c.connect_uri(os.environ["URI"]); conns.append(c)
blocks = {}
# Each connection gets 32 blocks of 64-300 KiB, interleaved across the disk.
slot = 512 * 1024
for i in range(128):
    c = conns[i % 4]
    data = random.randbytes(random.randint(64 * 1024, 300 * 1024))
    blocks[i * slot] = data
    c.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(data)), i * slot)
for c in conns:
    while c.aio_in_flight() > 0:
        c.poll(-1)
    c.flush()
reader = nbd.NBD(); reader.connect_uri(os.environ["URI"])
mismatches = sum(1 for off, data in blocks.items() if reader.pread(len(data), off) != data)
result({"mismatches": mismatches, "writes": len(blocks)})
`,
    { URI: server.uri },
  );
  assert.deepEqual(r, { mismatches: 0, writes: 128 });
});
