// Error semantics a client relies on, with libnbd's client-side checks switched off
// (set_strict_mode(0)) so the bad requests reach the server: the right errno for each, and the
// same connection keeps working afterwards. Plus EPERM on a --read-only export.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { nbdsh, randomFile, sha256 } from './helpers/nbd-clients.js';
import { CMD, RawNbd } from './helpers/raw-nbd.js';
import { startServer } from './helpers/nbd-server.js';
import { tempDir } from './helpers/tmp.js';

/** Each case: a libnbd call on a connected handle `h` of an export of `size` bytes, and its errno. */
const cases: Array<[name: string, call: string, errno: string]> = [
  ['read past the end', 'h.pread(4096, size)', 'EINVAL'],
  ['read across the end', 'h.pread(4096, size - 512)', 'EINVAL'],
  ['read far past the end (offset near 2^63)', 'h.pread(512, 2**63 - 512)', 'EINVAL'],
  ['write past the end', 'h.pwrite(b"w" * 4096, size)', 'ENOSPC'],
  ['write across the end', 'h.pwrite(b"w" * 4096, size - 512)', 'ENOSPC'],
  ['8 MiB write across the end (payload skipped)', 'h.pwrite(b"w" * (8 * 1024 * 1024), size - 4096)', 'ENOSPC'],
  ['zero past the end', 'h.zero(4096, size - 512)', 'ENOSPC'],
  ['trim past the end', 'h.trim(4096, size - 512)', 'EINVAL'],
  ['cache past the end', 'h.cache(4096, size)', 'EINVAL'],
  ['read with an unknown flag', 'h.pread(512, 0, 1 << 12)', 'EINVAL'],
  ['write with an unknown flag', 'h.pwrite(b"w" * 512, 0, 1 << 12)', 'EINVAL'],
  ['flush with an unknown flag', 'h.flush(1 << 12)', 'EINVAL'],
  ['trim with an unknown flag', 'h.trim(512, 0, 1 << 12)', 'EINVAL'],
  ['zero with an unknown flag', 'h.zero(512, 0, 1 << 12)', 'EINVAL'],
  ['read over the 32 MiB limit', 'h.pread(33 * 1024 * 1024, 0)', 'EINVAL'],
  ['read over the limit with DF', 'h.pread(33 * 1024 * 1024, 0, nbd.CMD_FLAG_DF)', 'EOVERFLOW'],
  ['write over the 32 MiB limit (payload skipped)', 'h.pwrite(b"w" * (33 * 1024 * 1024), 0)', 'EINVAL'],
];

test('bad requests get EINVAL / ENOSPC / EOVERFLOW and the connection stays usable after each', async (t) => {
  const server = await startServer(t, { size: '64M' });
  const script = `
import random
h.set_strict_mode(0)
h.connect_uri(os.environ["URI"])
size = h.get_size()
cases = ${JSON.stringify(cases.map(([name, call]) => [name, call]))}
out = []
for i, (name, call) in enumerate(cases):
    err = errno_of(lambda: eval(call))
    # The same connection still works: a write, then a read of the same bytes.
    data = random.randbytes(4096)
    offset = 4096 * (i + 1)
    h.pwrite(data, offset)
    ok = h.pread(4096, offset) == data
    out.append([name, err, ok])
# Nothing past-the-end changed the last bytes of the export.
result({"cases": out, "tail": h.pread(512, size - 512).hex()})
`;
  const r = await nbdsh<{ cases: [string, string | null, boolean][]; tail: string }>(script, { URI: server.uri });
  assert.deepEqual(
    r.cases,
    cases.map(([name, , errno]) => [name, errno, true]),
  );
  assert.equal(r.tail, '00'.repeat(512));
});

test('an unknown command gets EINVAL (raw client: libnbd cannot send one) and the connection goes on', async (t) => {
  const server = await startServer(t, { size: '1M' });
  await nbdsh(`h.connect_uri(os.environ["URI"]); h.pwrite(b"abc", 0); h.flush(); result(None)`, { URI: server.uri });
  const client = await RawNbd.handshake(server.port);
  t.after(() => client.close());
  assert.ok('sizeBytes' in (await client.negotiate('disk0')));
  client.request(0x77, 42n, 0n, 512n);
  const reply = await client.read(16);
  assert.equal(reply.readUInt32BE(4), 22, 'EINVAL');
  assert.equal(reply.readBigUInt64BE(8), 42n, 'the reply carries the request cookie');
  const read = await client.readAt(0, 3, 43n);
  assert.deepEqual([read.error, read.data.toString()], [0, 'abc']);
  client.request(CMD.disc, 44n, 0n, 0n);
  await client.closed;
});

test('a --read-only export refuses write, zero and trim with EPERM, still reads, and its store is unchanged', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'ro.img');
  const content = randomFile(store, 16 * 1024 * 1024);
  const server = await startServer(t, { store, size: null, args: ['--read-only'] });
  const r = await nbdsh<{ write: string | null; zero: string | null; trim: string | null; fuaWrite: string | null; bigWrite: string | null; flush: string | null; head: string }>(
    `
h.set_strict_mode(0)
h.connect_uri(os.environ["URI"])
result({"write": errno_of(lambda: h.pwrite(b"w" * 4096, 0)),
        "zero": errno_of(lambda: h.zero(4096, 0)),
        "trim": errno_of(lambda: h.trim(4096, 0)),
        "fuaWrite": errno_of(lambda: h.pwrite(b"w" * 512, 512, nbd.CMD_FLAG_FUA)),
        "bigWrite": errno_of(lambda: h.pwrite(b"w" * (16 * 1024 * 1024), 0)),
        "flush": errno_of(lambda: h.flush()),
        "head": sha256(h.pread(16 * 1024 * 1024, 0))})
`,
    { URI: server.uri },
  );
  assert.deepEqual(
    { write: r.write, zero: r.zero, trim: r.trim, fuaWrite: r.fuaWrite, bigWrite: r.bigWrite, flush: r.flush },
    { write: 'EPERM', zero: 'EPERM', trim: 'EPERM', fuaWrite: 'EPERM', bigWrite: 'EPERM', flush: null },
  );
  assert.equal(r.head, sha256(content));
  assert.ok(readFileSync(store).equals(content));
});
