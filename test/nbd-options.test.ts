// Option haggling seen by clients: libnbd's option mode (nbdsh) for LIST, INFO, GO and the meta
// context options; a raw client for an option the server does not know (libnbd 1.14 cannot send
// one) followed by GO; structured replies as negotiated.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { nbdsh } from './helpers/nbd-clients.js';
import { OPT, RawNbd, REP } from './helpers/raw-nbd.js';
import { startServer } from './helpers/nbd-server.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;

test('option mode: LIST names both exports, INFO size equals GO size for each', async (t) => {
  const dir = tempDir(t);
  const server = await startServer(t, { store: join(dir, 'disk0.img'), size: '24M', args: ['--export', `small=${join(dir, 'small.img')}:3M`, '--description', 'optdesc'] });
  const r = await nbdsh<{ list: [string, string][]; infoSmall: number; infoDisk: number; goDisk: number; opt: boolean; connected: boolean; read: string }>(
    `
h.set_opt_mode(True)
h.connect_uri(os.environ["URI"])
names = []
h.opt_list(lambda name, desc: names.append([name, desc]) or 0)
h.set_export_name("small"); h.opt_info(); info_small = h.get_size()
h.set_export_name("disk0"); h.opt_info(); info_disk = h.get_size()
opt = h.aio_is_negotiating()
h.opt_go()
result({"list": sorted(names), "infoSmall": info_small, "infoDisk": info_disk, "goDisk": h.get_size(),
        "opt": opt, "connected": h.aio_is_ready(), "read": h.pread(4, 24 * 1024 * 1024 - 4).hex()})
`,
    { URI: server.uri },
  );
  assert.deepEqual(r.list, [['disk0', 'optdesc'], ['small', 'optdesc']]);
  assert.equal(r.infoSmall, 3 * MiB);
  assert.equal(r.infoDisk, 24 * MiB);
  assert.equal(r.goDisk, r.infoDisk);
  assert.equal(r.opt, true, 'still negotiating after INFO');
  assert.equal(r.connected, true, 'GO entered transmission');
  assert.equal(r.read, '00000000', 'reads the last bytes of the export');
});

test('an unknown option is refused with ERR_UNSUP and negotiation goes on to INFO and GO', async (t) => {
  const server = await startServer(t, { size: '4M' });
  // Known content to read over the raw connection afterwards.
  await nbdsh(`h.connect_uri(os.environ["URI"]); h.pwrite(b"mirrorbox!" * 100, 4096); h.flush(); result(None)`, { URI: server.uri });

  const client = await RawNbd.handshake(server.port);
  t.after(() => client.close());
  for (const unknown of [4 /* PEEK_EXPORT, never implemented */, 0x1234, 0x7fff_ffff]) {
    const replies = await client.option(unknown, Buffer.from('some option data'));
    assert.equal(replies.length, 1);
    assert.equal(replies[0]!.type, REP.errUnsup, `option ${unknown} answered with 0x${replies[0]!.type.toString(16)}`);
  }
  const listed = await client.option(OPT.list);
  assert.deepEqual(listed.map((r) => r.type), [REP.server, REP.ack]);
  const missing = await client.negotiate('no-such-export');
  assert.deepEqual(missing, { error: REP.errUnknown });
  const info = await client.negotiate('disk0', OPT.info);
  const go = await client.negotiate('disk0');
  assert.deepEqual(info, go, 'INFO and GO report the same size and flags');
  assert.ok('sizeBytes' in go, 'GO after an unknown option succeeds');
  assert.equal(go.sizeBytes, BigInt(4 * MiB));
  // Transmission works: simple replies (no STRUCTURED_REPLY was asked for).
  const read = await client.readAt(4096, 1000);
  assert.equal(read.error, 0);
  assert.equal(read.data.toString(), 'mirrorbox!'.repeat(100));
});

test('LIST_META_CONTEXT and SET_META_CONTEXT: base:allocation, and block status that follows it', async (t) => {
  const server = await startServer(t, { size: '8M' });
  const r = await nbdsh<{ all: string[]; base: string[]; other: string[]; selected: boolean; structured: boolean; df: boolean; extents: number[] }>(
    `
h.set_opt_mode(True)
h.connect_uri(os.environ["URI"])
def listed():
    out = []
    h.opt_list_meta_context(lambda name: out.append(name) or 0)
    return out
every = listed()                         # no query: everything the server has
h.add_meta_context("base:")              # a namespace query
base = listed()
h.clear_meta_contexts(); h.add_meta_context("qemu:dirty-bitmap:nope")
other = listed()
h.clear_meta_contexts(); h.add_meta_context("base:allocation")
h.opt_go()                               # sends SET_META_CONTEXT, then GO
h.pwrite(b"x" * 65536, 65536)
h.flush()
seen = []
def cb(ctx, offset, entries, err):
    if ctx == "base:allocation":
        seen.extend(entries)
    return 0
h.block_status(8 * 1024 * 1024, 0, cb)
result({"all": every, "base": base, "other": other, "selected": h.can_meta_context("base:allocation"),
        "structured": h.get_structured_replies_negotiated(), "df": h.can_df(), "extents": seen})
`,
    { URI: server.uri },
  );
  assert.deepEqual(r.all, ['base:allocation']);
  assert.deepEqual(r.base, ['base:allocation']);
  assert.deepEqual(r.other, []);
  assert.equal(r.selected, true);
  assert.equal(r.structured, true, 'libnbd negotiated structured replies');
  assert.equal(r.df, true, 'DF is offered with structured replies');
  // [length, flags, ...]: hole 0-64K, data 64K-128K, hole to the end (3 = hole|zero).
  assert.deepEqual(r.extents, [65536, 3, 65536, 0, 8 * MiB - 131072, 3]);
});

test('without a meta context, block status is refused and the connection keeps working', async (t) => {
  const server = await startServer(t, { size: '8M' });
  const r = await nbdsh<{ selected: boolean; error: string | null; read: string }>(
    `
h.set_strict_mode(0)
h.connect_uri(os.environ["URI"])
err = errno_of(lambda: h.block_status(4096, 0, lambda *a: 0))
result({"selected": h.can_meta_context("base:allocation"), "error": err, "read": h.pread(2, 0).hex()})
`,
    { URI: server.uri },
  );
  assert.equal(r.selected, false);
  assert.equal(r.error, 'EINVAL');
  assert.equal(r.read, '0000');
});

test('option mode: ABORT ends that connection only', async (t) => {
  const server = await startServer(t, { size: '1M' });
  const r = await nbdsh<{ closed: boolean; size: number }>(
    `
h.set_opt_mode(True)
h.connect_uri(os.environ["URI"])
h.opt_abort()
closed = h.aio_is_closed()
h2 = nbd.NBD()
h2.connect_uri(os.environ["URI"])
result({"closed": closed, "size": h2.get_size()})
`,
    { URI: server.uri },
  );
  assert.equal(r.closed, true);
  assert.equal(r.size, MiB);
});
