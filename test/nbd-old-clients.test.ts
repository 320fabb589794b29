// Older clients: libnbd told not to ask for structured replies (simple replies only), and libnbd
// limited to the non-fixed newstyle handshake, where NBD_OPT_EXPORT_NAME is the only option
// (with and without the 124 zero bytes after it).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { nbdsh } from './helpers/nbd-clients.js';
import { startServer } from './helpers/nbd-server.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;

test('no structured replies: simple replies carry the right data and errors', async (t) => {
  const server = await startServer(t, { size: '16M' });
  const r = await nbdsh<{ structured: boolean; df: boolean; meta: boolean; protocol: string; reads: boolean[]; pastEnd: string | null; after: boolean }>(
    `
import random
h.set_request_structured_replies(False)
h.set_strict_mode(0)
h.add_meta_context("base:allocation")
h.connect_uri(os.environ["URI"])
data = random.randbytes(5 * 1024 * 1024 + 123)
h.pwrite(data, 1000)
def expected(offset, length):
    out = bytearray(length)
    lo, hi = max(offset, 1000), min(offset + length, 1000 + len(data))
    if lo < hi:
        out[lo - offset:hi - offset] = data[lo - 1000:hi - 1000]
    return bytes(out)
# Reads of many sizes, inside data, across its edges and in never-written space.
checks = []
for (offset, length) in [(1000, len(data)), (0, 4096), (1000 + len(data) - 10, 4096), (8 * 1024 * 1024, 1024 * 1024), (12345, 1), (0, 16 * 1024 * 1024)]:
    checks.append(bytes(h.pread(length, offset)) == expected(offset, length))
past = errno_of(lambda: h.pread(4096, 16 * 1024 * 1024))
after = h.pread(len(data), 1000) == data
result({"structured": h.get_structured_replies_negotiated(), "df": h.can_df(), "meta": h.can_meta_context("base:allocation"),
        "protocol": h.get_protocol(), "reads": checks, "pastEnd": past, "after": after})
`,
    { URI: server.uri },
  );
  assert.equal(r.structured, false);
  assert.equal(r.df, false, 'DF needs structured replies');
  assert.equal(r.meta, false, 'no meta context without structured replies');
  assert.equal(r.protocol, 'newstyle-fixed');
  assert.deepEqual(r.reads, [true, true, true, true, true, true]);
  assert.equal(r.pastEnd, 'EINVAL');
  assert.equal(r.after, true);
});

test('EXPORT_NAME (non-fixed newstyle), with and without the 124 zero bytes, picks the named export', async (t) => {
  const dir = tempDir(t);
  const server = await startServer(t, { store: join(dir, 'disk0.img'), size: '8M', args: ['--export', `second=${join(dir, 'second.img')}:3M`] });
  const r = await nbdsh<Array<{ flags: number; protocol: string; structured: boolean; size: number; readBack: boolean }>>(
    `
out = []
for i, flags in enumerate([0, nbd.HANDSHAKE_FLAG_NO_ZEROES]):
    c = nbd.NBD()
    # Without FIXED_NEWSTYLE, libnbd may only send NBD_OPT_EXPORT_NAME.
    c.set_handshake_flags(flags)
    c.connect_uri(os.environ["URI"])
    payload = (b"export-name-%d " % i) * 100
    c.pwrite(payload, 4096 * i)
    c.flush()
    out.append({"flags": c.get_handshake_flags(), "protocol": c.get_protocol(), "structured": c.get_structured_replies_negotiated(),
                "size": c.get_size(), "readBack": c.pread(len(payload), 4096 * i) == payload})
    c.shutdown()
# The writes landed on "second", as a modern (GO) client sees it.
g = nbd.NBD()
g.connect_uri(os.environ["URI"])
seen = [g.pread(len(b"export-name-0 "), 0) == b"export-name-0 ", g.pread(len(b"export-name-1 "), 4096) == b"export-name-1 "]
out.append({"flags": -1, "protocol": g.get_protocol(), "structured": True, "size": g.get_size(), "readBack": all(seen)})
result(out)
`,
    { URI: server.exportUri('second') },
  );
  assert.deepEqual(r, [
    { flags: 0, protocol: 'newstyle', structured: false, size: 3 * MiB, readBack: true },
    { flags: 2, protocol: 'newstyle', structured: false, size: 3 * MiB, readBack: true },
    { flags: -1, protocol: 'newstyle-fixed', structured: true, size: 3 * MiB, readBack: true },
  ]);
});
