// The `mirrorbox serve` contract: one ready line on stdout (TCP and Unix socket URIs), SIGTERM and
// SIGINT exit 0 with the data in the store, and every startup failure exits non-zero with one
// stderr line "mirrorbox: <reason>"; --help shows examples.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { nbdsh, runOk } from './helpers/nbd-clients.js';
import { CMD, RawNbd } from './helpers/raw-nbd.js';
import { startServer } from './helpers/nbd-server.js';
import { cliPath } from './helpers/paths.js';
import { run } from './helpers/process.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;
/** How long a stop may take: finishing requests and an fdatasync, on a busy shared machine. */
const stopMsMax = 10_000;

test('ready line names the TCP and Unix socket URIs and the exports; both serve the same bytes', async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, 'nbd.sock');
  const server = await startServer(t, { store: join(dir, 'disk0.img'), size: '2M', args: ['--socket', socket, '--export', `extra=${join(dir, 'extra.img')}:1G`] });
  const lines = server.proc.stdout().split('\n').filter((l) => l !== '');
  assert.deepEqual(lines, [`listening on nbd://127.0.0.1:${server.port} nbd+unix:///?socket=${socket} (exports: disk0 (2 MiB), extra (1 GiB))`]);
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x42 0 64k', server.uri]);
  await runOk('qemu-io', ['-f', 'raw', '-c', 'read -P 0x42 0 64k', `nbd+unix:///disk0?socket=${socket}`]);
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  // The timeout turns a server that never exits into a failure, not a 5-minute wait.
  test(`${signal} exits 0 promptly, with a client still connected, and leaves the writes in the store`, { timeout: 20_000 }, async (t) => {
    const server = await startServer(t, { size: '8M' });
    // An nbdsh client writes without flushing and disconnects.
    await nbdsh(`h.connect_uri(os.environ["URI"]); h.pwrite(b"unflushed" * 1000, 1024 * 1024); result(None)`, { URI: server.uri });
    // A raw client writes, gets its reply, and stays connected.
    const client = await RawNbd.handshake(server.port);
    t.after(() => client.close());
    assert.ok('sizeBytes' in (await client.negotiate('disk0')));
    const payload = Buffer.from('still connected'.repeat(100));
    client.request(CMD.write, 7n, BigInt(3 * MiB), BigInt(payload.length), 0, payload);
    const reply = await client.read(16);
    assert.equal(reply.readUInt32BE(4), 0, 'write succeeded');

    const stoppedAt = Date.now();
    const exit = await server.stop(signal);
    assert.equal(exit.code, 0, `exit after ${signal}: ${JSON.stringify(exit)}; stderr: ${server.proc.stderr()}`);
    assert.ok(Date.now() - stoppedAt < stopMsMax, `stopping took ${Date.now() - stoppedAt} ms`);
    await client.closed;
    const store = readFileSync(server.storePath);
    assert.equal(store.subarray(MiB, MiB + 9000).toString(), 'unflushed'.repeat(1000));
    assert.equal(store.subarray(3 * MiB, 3 * MiB + payload.length).toString(), payload.toString());
  });
}

/** Runs `mirrorbox serve ARGS`; it must fail (exit 2) with exactly one stderr line "mirrorbox: ..." matching `reason`. */
async function expectServeFailure(args: readonly string[], reason: RegExp, options: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  const result = await run(process.execPath, [cliPath, 'serve', ...args], { timeoutMs: 30_000, ...options });
  assert.equal(result.code, 2, `serve ${args.join(' ')} exited ${result.code}, not 2 (an expected failure): ${result.stderr}`);
  assert.doesNotMatch(result.stdout, /listening/);
  const lines = result.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `one stderr line expected, got: ${result.stderr}`);
  assert.match(lines[0]!, /^mirrorbox: /);
  assert.match(lines[0]!, reason);
}

test('a bad flag or flag value exits non-zero with one "mirrorbox:" line', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'disk.img');
  await expectServeFailure(['--store', store, '--bogus'], /--bogus/);
  await expectServeFailure(['--store', store, '--size', '12Q'], /12Q/);
  await expectServeFailure(['--store', store, '--listen', 'not-an-address'], /--listen/);
  await expectServeFailure(['--store', store, '--listen', '127.0.0.1:70000'], /port/);
  await expectServeFailure(['--export', '=nameless', '--listen', '127.0.0.1:0'], /name/);
  await expectServeFailure(['--listen', '127.0.0.1:0'], /--store/);
  await expectServeFailure(['--store', store, '--tls-required', '--listen', '127.0.0.1:0'], /--tls-cert/);
});

test('a missing store folder exits non-zero with one "mirrorbox:" line unless --mkdir; --mkdir creates it', async (t) => {
  const dir = tempDir(t);
  const nested = join(dir, 'no', 'such', 'disk.img');
  await expectServeFailure(['--store', nested, '--listen', '127.0.0.1:0'], /folder .*no.*such.* does not exist.*--mkdir/);
  assert.equal(existsSync(join(dir, 'no')), false, 'nothing created without --mkdir');
  writeFileSync(join(dir, 'a-file'), 'not a folder');
  await expectServeFailure(['--mkdir', '--store', join(dir, 'a-file', 'sub', 'disk.img'), '--listen', '127.0.0.1:0'], /not a directory|ENOTDIR/i);
  const server = await startServer(t, { store: nested, size: '1M', args: ['--mkdir'] });
  assert.equal(statSync(nested).size, MiB);
  assert.equal(JSON.parse(await runOk('nbdinfo', ['--json', server.uri])).exports[0]['export-size'], MiB);
});

/** Runs as an unprivileged user when the tests run as root (root may write any file). */
function asUnprivileged(t: TestContext, dir: string): { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } {
  if (process.getuid?.() !== 0) return {};
  const nobody = 65534;
  chmodSync(dir, 0o755);
  const home = tempDir(t);
  chmodSync(home, 0o777);
  return { uid: nobody, gid: nobody, env: { ...process.env, HOME: home } };
}

test('an unwritable store (file or folder) exits non-zero with one "mirrorbox:" line and is left as it was', async (t) => {
  const dir = tempDir(t);
  const store = join(dir, 'ro.img');
  writeFileSync(store, Buffer.alloc(MiB, 7));
  chmodSync(store, 0o444);
  const roDir = join(dir, 'ro-dir');
  mkdirSync(roDir);
  chmodSync(roDir, 0o555);
  const as = asUnprivileged(t, dir);
  await expectServeFailure(['--store', store, '--listen', '127.0.0.1:0'], /cannot open store .*(EACCES|permission)/i, as);
  await expectServeFailure(['--store', join(roDir, 'new.img'), '--size', '1M', '--listen', '127.0.0.1:0'], /cannot open store .*(EACCES|permission)/i, as);
  assert.ok(readFileSync(store).equals(Buffer.alloc(MiB, 7)));
});

test('a port in use exits non-zero with one "mirrorbox:" line and leaves the store as it was', async (t) => {
  const holder: Server = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.after(() => holder.close());
  const port = (holder.address() as { port: number }).port;
  const dir = tempDir(t);
  const store = join(dir, 'disk.img');
  writeFileSync(store, Buffer.alloc(MiB, 9));
  await expectServeFailure(['--store', store, '--listen', `127.0.0.1:${port}`], /address already in use/);
  assert.ok(readFileSync(store).equals(Buffer.alloc(MiB, 9)));
});

test('serve --help shows usage and examples', async () => {
  const help = await run(process.execPath, [cliPath, 'serve', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /USAGE/);
  assert.match(help.stdout, /EXAMPLES/);
  assert.match(help.stdout, /\$ mirrorbox serve --store \S+ --size 1G/);
  for (const flag of ['--store', '--size', '--export', '--listen', '--socket', '--read-only', '--tls-cert', '--tls-key', '--tls-required']) {
    assert.ok(help.stdout.includes(flag), `--help mentions ${flag}`);
  }
});
