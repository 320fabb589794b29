// Durability: what real clients wrote with FUA, or wrote and then flushed, is there after the
// server is killed with SIGKILL and restarted on the same store. And (where strace can run) a FUA
// write, FLUSH, and FUA zero/trim are acknowledged only after an fdatasync of the store.
//
// What cannot be done here: a power cut. SIGKILL leaves the kernel's page cache intact, so the
// restart test shows that nothing acknowledged was still held inside the server process; the
// strace test shows that the acknowledgement waits for fdatasync, which is what survives power loss.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { nbdsh, randomFile, runOk } from './helpers/nbd-clients.js';
import { startServer } from './helpers/nbd-server.js';
import { run } from './helpers/process.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;

test('FUA writes and flushed writes from real clients survive SIGKILL of the server and a restart', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'disk0.img');
  // A second export for nbdcopy, which writes a whole export from offset 0.
  const copyExport = ['--export', `copy=${join(dir, 'copy.img')}:16M`];
  const first = await startServer(t, { store, size: '64M', args: copyExport });

  // libnbd: a FUA write, a write + flush, a FUA zero over old data, a trim + flush.
  const written = await nbdsh<{ fua: string; flushed: string }>(
    `
import random
h.connect_uri(os.environ["URI"])
fua = random.randbytes(3 * 1024 * 1024 + 5)
h.pwrite(fua, 1024 * 1024, nbd.CMD_FLAG_FUA)
flushed = random.randbytes(2 * 1024 * 1024)
h.pwrite(flushed, 8 * 1024 * 1024)
h.pwrite(b"\\xff" * (1024 * 1024), 12 * 1024 * 1024)
h.pwrite(b"\\xee" * (1024 * 1024), 14 * 1024 * 1024)
h.flush()
h.zero(1024 * 1024, 12 * 1024 * 1024, nbd.CMD_FLAG_FUA)
h.trim(1024 * 1024, 14 * 1024 * 1024)
h.flush()
result({"fua": sha256(fua), "flushed": sha256(flushed)})
`,
    { URI: first.uri },
  );
  // qemu-io: a FUA write; nbdcopy: 16 MiB then --flush.
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -f -P 0x77 20M 1M', first.uri]);
  const source = join(dir, 'source.bin');
  const copied = randomFile(source, 16 * MiB);
  await runOk('nbdcopy', ['--flush', source, first.exportUri('copy')]);

  const killed = await first.stop('SIGKILL');
  assert.equal(killed.signal, 'SIGKILL');

  const second = await startServer(t, { store, size: null, args: copyExport });
  const back = await nbdsh<{ fua: string; flushed: string; zeroed: boolean; trimmed: boolean; size: number }>(
    `
h.connect_uri(os.environ["URI"])
result({"fua": sha256(h.pread(3 * 1024 * 1024 + 5, 1024 * 1024)), "flushed": sha256(h.pread(2 * 1024 * 1024, 8 * 1024 * 1024)),
        "zeroed": h.pread(1024 * 1024, 12 * 1024 * 1024) == bytes(1024 * 1024),
        "trimmed": h.pread(1024 * 1024, 14 * 1024 * 1024) == bytes(1024 * 1024), "size": h.get_size()})
`,
    { URI: second.uri },
  );
  assert.deepEqual(back, { fua: written.fua, flushed: written.flushed, zeroed: true, trimmed: true, size: 64 * MiB });
  await runOk('qemu-io', ['-f', 'raw', '-c', 'read -P 0x77 20M 1M', second.uri]);
  const copiedBack = join(dir, 'back.bin');
  await runOk('nbdcopy', [second.exportUri('copy'), copiedBack]);
  assert.ok(readFileSync(copiedBack).equals(copied), 'nbdcopy data lost across SIGKILL');
});

/** Why strace cannot trace the server here (containers may forbid ptrace), or false when it can. */
async function straceUnavailable(): Promise<string | false> {
  try {
    const probe = await run('strace', ['-f', '-o', '/dev/null', 'true']);
    return probe.code === 0 ? false : `strace cannot trace here: ${probe.stderr.trim()}`;
  } catch {
    return 'strace is not installed';
  }
}

test('FUA writes, FUA zero/trim and FLUSH are acknowledged only after an fdatasync (seen by strace)', { skip: await straceUnavailable(), timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const log = join(dir, 'strace.log');
  const server = await startServer(t, { store: join(dir, 'disk0.img'), size: '16M', wrapper: ['strace', '-f', '-qq', '-e', 'trace=fdatasync', '-o', log] });
  // The client reads strace's log right after each reply: strace writes a syscall's line when it
  // returns, before the server can go on to send the reply.
  const counts = await nbdsh<Record<string, number>>(
    `
import re
def syncs():
    with open(os.environ["LOG"]) as f:
        return len(re.findall(r"fdatasync(?:\\(\\d+\\)| resumed>\\)) += 0", f.read()))
h.connect_uri(os.environ["URI"])
c = {"start": syncs()}
h.pwrite(b"a" * 4096, 0); c["plainWrite"] = syncs()
h.pwrite(b"b" * 4096, 4096, nbd.CMD_FLAG_FUA); c["fuaWrite"] = syncs()
h.pwrite(b"d" * (1024 * 1024), 1024 * 1024, nbd.CMD_FLAG_FUA); c["bigFuaWrite"] = syncs()
h.pwrite(b"c" * 4096, 8192); c["beforeFlush"] = syncs()
h.flush(); c["flush"] = syncs()
h.zero(4096, 0, nbd.CMD_FLAG_FUA); c["fuaZero"] = syncs()
h.trim(4096, 4096, nbd.CMD_FLAG_FUA); c["fuaTrim"] = syncs()
result(c)
`,
    { URI: server.uri, LOG: log },
  );
  assert.equal(counts['plainWrite'], counts['start'], `a plain write does not wait for fdatasync: ${JSON.stringify(counts)}`);
  assert.ok(counts['fuaWrite']! > counts['plainWrite']!, `FUA write: ${JSON.stringify(counts)}`);
  assert.ok(counts['bigFuaWrite']! > counts['fuaWrite']!, `1 MiB FUA write: ${JSON.stringify(counts)}`);
  assert.equal(counts['beforeFlush'], counts['bigFuaWrite']);
  assert.ok(counts['flush']! > counts['beforeFlush']!, `FLUSH: ${JSON.stringify(counts)}`);
  assert.ok(counts['fuaZero']! > counts['flush']!, `FUA zero: ${JSON.stringify(counts)}`);
  assert.ok(counts['fuaTrim']! > counts['fuaZero']!, `FUA trim: ${JSON.stringify(counts)}`);
});

test('a new store file is made durable in its folder (fsync of the folder) before the server is ready', { skip: await straceUnavailable(), timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const log = join(dir, 'strace.log');
  const store = join(dir, 'new.img');
  await startServer(t, { store, size: '16M', wrapper: ['strace', '-f', '-qq', '-e', 'trace=openat,fsync', '-o', log] });
  const trace = readFileSync(log, 'utf8');
  const opened = new RegExp(`openat\\(AT_FDCWD, "${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}", O_RDONLY[^)]*\\) = (\\d+)`).exec(trace);
  assert.ok(opened, `the store's folder was not opened for fsync:\n${trace.split('\n').filter((l) => l.includes(dir)).join('\n')}`);
  assert.match(trace, new RegExp(`fsync\\(${opened[1]}\\) += 0`), 'the folder was opened but not fsynced');
});
