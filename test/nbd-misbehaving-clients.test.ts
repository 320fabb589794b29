// Clients that vanish or misbehave do not disturb the server or its other clients: an nbdcopy and
// a fio killed with SIGKILL mid-transfer; handshakes that stall half way; garbage in the
// handshake and in transmission; a client that never reads its replies.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { clientEnv, nbdsh } from './helpers/nbd-clients.js';
import { CLIENT_FLAG, CMD, OPT, RawNbd, REP } from './helpers/raw-nbd.js';
import { startInProcessServer } from './helpers/inprocess-server.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { startServer, type RunningServer } from './helpers/nbd-server.js';
import { spawnCollected } from './helpers/process.js';

const MiB = 1024 * 1024;
/** The server's handshake time limit (limits.ts handshakeTimeoutMs), plus slack for a busy machine. */
const handshakeTimeoutMs = 10_000;
const closeSlackMs = 8_000;

/** Another client writes, flushes and reads back 1 MiB at `offset`; true if the bytes match. */
async function otherClientWorks(server: RunningServer, offset: number): Promise<boolean> {
  return nbdsh<boolean>(
    `
import random
h.connect_uri(os.environ["URI"])
data = random.randbytes(1024 * 1024)
h.pwrite(data, int(os.environ["OFFSET"]))
h.flush()
result(h.pread(len(data), int(os.environ["OFFSET"])) == data)
`,
    { URI: server.uri, OFFSET: String(offset) },
  );
}

/** Waits until the store file has at least `bytes` allocated (a transfer is under way). */
async function untilAllocated(path: string, bytes: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (statSync(path).blocks * 512 < bytes) {
    if (Date.now() > deadline) throw new Error(`store ${path} never reached ${bytes} allocated bytes`);
    await sleep(50);
  }
}

function alive(server: RunningServer): boolean {
  return server.proc.child.exitCode === null && server.proc.child.signalCode === null;
}

test('nbdcopy and fio killed with SIGKILL mid-transfer: other clients work meanwhile and afterwards', async (t) => {
  const server = await startServer(t, { size: '256M' });

  // nbdcopy from a pipe that this test feeds: it is killed with the pipe still open, mid-stream.
  const copy = spawnCollected(t, 'nbdcopy', ['-', server.uri], { stdio: ['pipe', 'pipe', 'pipe'], env: clientEnv() });
  copy.child.stdin!.on('error', () => {});
  for (let i = 0; i < 24; i += 1) copy.child.stdin!.write(randomBytes(MiB));
  await untilAllocated(server.storePath, 8 * MiB);
  assert.equal(await otherClientWorks(server, 200 * MiB), true, 'another client works during the copy');
  copy.child.kill('SIGKILL');
  assert.equal((await copy.exited).signal, 'SIGKILL');

  // fio with 16 requests in flight, running until killed (--thread: its job runs inside the fio
  // process, not in a forked child that would outlive the SIGKILL).
  const fio = spawnCollected(t, 'fio', ['--name=killed', '--ioengine=nbd', `--uri=${server.uri}`, '--rw=randrw', '--bs=64k', '--iodepth=16', '--size=128M', '--offset=64M', '--time_based', '--runtime=60', '--thread'], {
    cwd: server.dir,
    env: clientEnv(),
  });
  await untilAllocated(server.storePath, 40 * MiB);
  assert.equal(await otherClientWorks(server, 210 * MiB), true, 'another client works during fio');
  fio.child.kill('SIGKILL');
  assert.equal((await fio.exited).signal, 'SIGKILL');

  assert.equal(await otherClientWorks(server, 220 * MiB), true, 'another client works afterwards');
  assert.ok(alive(server), 'the server is still running');
  const stopped = await server.stop('SIGTERM');
  assert.equal(stopped.code, 0, `server exit after killed clients: ${server.proc.stderr()}`);
});

/** A raw TCP connection that records when the server closes it. */
function rawSocket(port: number): Promise<{ socket: Socket; closed: Promise<void>; received: () => number }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' }, () => {
      let bytes = 0;
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      socket.on('error', () => {});
      const closed = new Promise<void>((done) => socket.once('close', () => done()));
      resolve({ socket, closed, received: () => bytes });
    });
    socket.once('error', reject);
  });
}

test('stalled half handshakes, garbage and a client that never reads do not disturb other clients', async (t) => {
  const server = await startServer(t, { size: '64M' });
  const started = Date.now();

  // Stall 1: connect and send nothing. Stall 2: half the client flags. Stall 3: half an option header.
  const silent = await rawSocket(server.port);
  const halfFlags = await rawSocket(server.port);
  halfFlags.socket.write(Buffer.from([0, 0]));
  const halfOption = await RawNbd.handshake(server.port, CLIENT_FLAG.fixedNewstyle | CLIENT_FLAG.noZeroes);
  halfOption.write(Buffer.from('IHAVEOPT'));
  // Garbage instead of a handshake (an HTTP request), and garbage after a good handshake.
  const http = await rawSocket(server.port);
  http.socket.write(Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: mirrorbox\r\n\r\n'), randomBytes(4096)]));
  const badOption = await RawNbd.handshake(server.port);
  badOption.write(randomBytes(64));
  // Garbage in the transmission phase (bad request magic) after a successful GO.
  const badRequest = await RawNbd.handshake(server.port);
  assert.ok('sizeBytes' in (await badRequest.negotiate('disk0')));
  badRequest.write(randomBytes(28));
  // A client that asks for 64 MiB of reads and never reads the replies.
  const deaf = await RawNbd.handshake(server.port);
  assert.ok('sizeBytes' in (await deaf.negotiate('disk0')));
  deaf.socket.pause();
  for (let i = 0; i < 64; i += 1) deaf.request(CMD.read, BigInt(i), BigInt(i * MiB), BigInt(MiB));
  t.after(() => {
    for (const s of [silent.socket, halfFlags.socket, http.socket]) s.destroy();
    for (const c of [halfOption, badOption, badRequest, deaf]) c.close();
  });

  // Garbage closes that connection at once.
  await Promise.all([http.closed, badOption.closed, badRequest.closed]);
  assert.ok(Date.now() - started < handshakeTimeoutMs, 'garbage is refused at once, not at the handshake timeout');

  // Meanwhile another client works, while the stalled ones are still open.
  assert.equal(await otherClientWorks(server, 0), true);
  assert.equal(await otherClientWorks(server, 32 * MiB), true);
  const stalledStillOpen = [silent.socket, halfFlags.socket, halfOption.socket].every((s) => !s.destroyed);
  assert.ok(stalledStillOpen, 'the stalled handshakes were still open while the other client worked');

  // The stalled handshakes are closed by the server's handshake timeout.
  const closedAfterMs = await Promise.all([silent.closed, halfFlags.closed, halfOption.closed].map((closed) => closed.then(() => Date.now() - started)));
  for (const ms of closedAfterMs) {
    assert.ok(ms >= handshakeTimeoutMs - 1000 && ms < handshakeTimeoutMs + closeSlackMs, `stalled handshake closed after ${ms} ms`);
  }
  assert.equal(silent.received(), 18, 'the silent client got only the 18-byte greeting');

  // The deaf client's connection is still open (the server waits on it alone), and others work.
  assert.equal(deaf.socket.destroyed, false);
  assert.equal(await otherClientWorks(server, 48 * MiB), true, 'another client works afterwards');
  assert.ok(alive(server));
});

test('requests sent while the GO reply is stuck in a full socket are all answered', async (t) => {
  // The client reads nothing while it sends: ~16 MiB of LIST replies fill the socket, so the GO
  // reply waits; READs sent meanwhile reach the server during its switch to direct reads.
  const descriptionBytes = 4000;
  const exports = Array.from({ length: 200 }, (_, i) => ({
    name: i === 0 ? 'disk0' : `e${i}`,
    description: 'd'.repeat(descriptionBytes),
    device: new MemoryStore(MiB),
  }));
  const pattern = randomBytes(64 * 1024);
  await exports[0]!.device.write([pattern], 0, false);
  const { port } = await startInProcessServer(t, { exports });
  const client = await RawNbd.handshake(port);
  t.after(() => client.close());
  const lists = 20;
  for (let i = 0; i < lists; i += 1) client.sendOption(OPT.list);
  client.sendOption(OPT.go, RawNbd.infoData('disk0'));
  await sleep(300);
  const reads = 8;
  for (let i = 0; i < reads; i += 1) client.request(CMD.read, BigInt(i + 1), BigInt(i * 8192), 8192n);
  await sleep(300);
  for (let i = 0; i < lists; i += 1) {
    for (;;) {
      const reply = await client.readOptionReply();
      if (reply.type === REP.ack) break;
    }
  }
  for (;;) {
    const reply = await client.readOptionReply();
    assert.equal(reply.option, OPT.go);
    if (reply.type === REP.ack) break;
    assert.equal(reply.type, REP.info);
  }
  for (let i = 0; i < reads; i += 1) {
    const reply = await client.readReply(8192);
    assert.equal(reply.error, 0);
    assert.equal(reply.cookie, BigInt(i + 1));
    assert.ok(reply.data.equals(pattern.subarray(i * 8192, (i + 1) * 8192)), `read ${i + 1} returned other bytes`);
  }
});
