// nbdinfo (libnbd) against `mirrorbox serve`: what an export advertises (--json), several exports
// (--list), and where data and holes are (--map) after writes, trims and zeroes.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { nbdsh, randomFile, runOk } from './helpers/nbd-clients.js';
import { startServer } from './helpers/nbd-server.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface NbdinfoExport {
  'export-name': string;
  description?: string;
  'export-size': number;
  contexts?: string[];
  is_read_only: boolean;
  can_cache: boolean;
  can_df: boolean;
  can_fast_zero: boolean;
  can_flush: boolean;
  can_fua: boolean;
  can_multi_conn: boolean;
  can_trim: boolean;
  can_zero: boolean;
  block_size_minimum: number;
  block_size_preferred: number;
  block_size_maximum: number;
}

interface NbdinfoJson {
  protocol: string;
  TLS: boolean;
  structured: boolean;
  exports: NbdinfoExport[];
}

test('nbdinfo --json shows the size, every capability flag, block sizes and the description', async (t) => {
  const server = await startServer(t, { size: '1G', args: ['--description', 'test drive seven'] });
  const info = JSON.parse(await runOk('nbdinfo', ['--json', server.uri])) as NbdinfoJson;
  assert.equal(info.protocol, 'newstyle-fixed');
  assert.equal(info.structured, true);
  assert.equal(info.TLS, false);
  assert.equal(info.exports.length, 1);
  const e = info.exports[0]!;
  assert.equal(e['export-name'], 'disk0');
  assert.equal(e['export-size'], GiB);
  assert.equal(e.description, 'test drive seven');
  assert.deepEqual(e.contexts, ['base:allocation']);
  assert.deepEqual(
    {
      is_read_only: e.is_read_only,
      can_cache: e.can_cache,
      can_df: e.can_df,
      can_fast_zero: e.can_fast_zero,
      can_flush: e.can_flush,
      can_fua: e.can_fua,
      can_multi_conn: e.can_multi_conn,
      can_trim: e.can_trim,
      can_zero: e.can_zero,
    },
    { is_read_only: false, can_cache: true, can_df: true, can_fast_zero: true, can_flush: true, can_fua: true, can_multi_conn: true, can_trim: true, can_zero: true },
  );
  assert.deepEqual([e.block_size_minimum, e.block_size_preferred, e.block_size_maximum], [1, 4096, 32 * MiB]);
  // The 1 GiB store was created sparse: it takes (almost) no disk space.
  const stat = statSync(server.storePath);
  assert.equal(stat.size, GiB);
  assert.ok(stat.blocks * 512 < MiB, `new store uses ${stat.blocks * 512} bytes on disk`);
});

test('nbdinfo --json on a --read-only export: read-only, no write-side flags, same bytes', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'base.img');
  const content = randomFile(store, 8 * MiB);
  const server = await startServer(t, { store, size: null, args: ['--read-only'] });
  const e = (JSON.parse(await runOk('nbdinfo', ['--json', server.uri])) as NbdinfoJson).exports[0]!;
  assert.equal(e.is_read_only, true);
  assert.equal(e['export-size'], 8 * MiB);
  assert.deepEqual([e.can_fua, e.can_trim, e.can_zero, e.can_fast_zero], [false, false, false, false]);
  assert.equal(e.can_flush, true);
  assert.equal(e.can_cache, true);
  const copy = join(dir, 'copy.img');
  await runOk('nbdcopy', [server.uri, copy]);
  assert.ok(readFileSync(copy).equals(content), 'the read-only export serves the store bytes');
});

test('nbdinfo --list shows every export with its own size', async (t) => {
  const dir = tempDir(t);
  const multi = await startServer(t, {
    store: join(dir, 'disk0.img'),
    size: '4M',
    args: ['--export', `alpha=${join(dir, 'a.img')}:2M`, '--export', `beta=${join(dir, 'b.img')}:3K`],
  });
  const list = JSON.parse(await runOk('nbdinfo', ['--list', '--json', multi.uri])) as NbdinfoJson;
  const sizes = Object.fromEntries(list.exports.map((e) => [e['export-name'], e['export-size']]));
  assert.deepEqual(sizes, { disk0: 4 * MiB, alpha: 2 * MiB, beta: 3 * 1024 });
  // Each export is its own store: a write to one is not seen in another.
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x61 0 4k', multi.exportUri('alpha')]);
  await runOk('qemu-io', ['-f', 'raw', '-c', 'read -P 0 0 4k', multi.exportUri('disk0')]);
  await runOk('qemu-io', ['-f', 'raw', '-c', 'read -P 0x61 0 4k', multi.exportUri('alpha')]);
  // And an export nobody configured is refused.
  const unknown = await nbdsh<string | null>(`
result(errno_of(lambda: h.connect_uri(os.environ["URI"])))
`, { URI: multi.exportUri('nope') });
  assert.equal(unknown, 'ENOENT');
});

interface MapEntry {
  offset: number;
  length: number;
  type: number;
}

/** nbdinfo --map --json, with neighbours of the same type merged (servers may split extents). */
async function mapOf(uri: string): Promise<MapEntry[]> {
  const raw = JSON.parse(await runOk('nbdinfo', ['--map', '--json', uri])) as MapEntry[];
  const merged: MapEntry[] = [];
  for (const { offset, length, type } of raw) {
    const last = merged[merged.length - 1];
    if (last && last.type === type && last.offset + last.length === offset) last.length += length;
    else merged.push({ offset, length, type });
  }
  return merged;
}

/** The part of a map inside [from, to). */
function clip(map: MapEntry[], from: number, to: number): MapEntry[] {
  const out: MapEntry[] = [];
  for (const e of map) {
    const start = Math.max(e.offset, from);
    const end = Math.min(e.offset + e.length, to);
    if (end > start) out.push({ offset: start, length: end - start, type: e.type });
  }
  return out;
}

test('nbdinfo --map shows data where written and holes where trimmed, zeroed or never written', async (t) => {
  const server = await startServer(t, { size: '16M' });
  const hole = 3; // base:allocation: hole | zero
  const data = 0;
  assert.deepEqual(await mapOf(server.uri), [{ offset: 0, length: 16 * MiB, type: hole }]);

  await nbdsh(`
h.connect_uri(os.environ["URI"])
h.pwrite(b"\\xa5" * (1024 * 1024), 0)              # data 0-1M
h.pwrite(b"\\x5a" * (64 * 1024), 4 * 1024 * 1024)  # data 4M-4M+64K
h.pwrite(b"\\x3c" * (1024 * 1024), 8 * 1024 * 1024)  # data 8M-9M
h.trim(512 * 1024, 512 * 1024)                      # hole 512K-1M
h.zero(64 * 1024, 4 * 1024 * 1024)                  # may punch: hole 4M-4M+64K
h.zero(1024 * 1024, 8 * 1024 * 1024, nbd.CMD_FLAG_NO_HOLE)  # zeros, allocated: 8M-9M
h.flush()
result(None)
`, { URI: server.uri });

  // ZERO with NO_HOLE on 8M-9M: zeros, and the space stays allocated (later writes cannot hit
  // ENOSPC). How the map shows it is the file system's business (ext4 reports unwritten extents
  // as holes, tmpfs as data), so only its bytes and the allocation are checked.
  const map = await mapOf(server.uri);
  assert.deepEqual(clip(map, 0, 8 * MiB), [
    { offset: 0, length: 512 * 1024, type: data },
    { offset: 512 * 1024, length: 8 * MiB - 512 * 1024, type: hole },
  ]);
  assert.deepEqual(clip(map, 9 * MiB, 16 * MiB), [{ offset: 9 * MiB, length: 7 * MiB, type: hole }]);
  assert.equal(map[map.length - 1]!.offset + map[map.length - 1]!.length, 16 * MiB, 'the map covers the whole export');
  const allocatedBytes = statSync(server.storePath).blocks * 512;
  assert.ok(allocatedBytes >= 512 * 1024 + MiB, `store allocates ${allocatedBytes} bytes; expected 0-512K data and 8M-9M kept allocated`);
  // And the bytes agree with the map.
  await runOk('qemu-io', ['-f', 'raw', '-c', 'read -P 0xa5 0 512k', '-c', 'read -P 0 512k 7680k', '-c', 'read -P 0 8M 8M', server.uri]);
});
