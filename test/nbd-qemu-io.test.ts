// qemu-io (QEMU's NBD client) against `mirrorbox serve`: pattern writes and reads, write -z
// (with and without unmap, and fast zero), discard, FUA writes, requests in flight (aio_*) and
// flush; read back on a fresh connection and checked against the store file itself.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { runOk } from './helpers/nbd-clients.js';
import { startServer } from './helpers/nbd-server.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** One qemu-io command and what it does to the disk (for the model the store is checked against). */
interface Step {
  command: string;
  /** Byte the range holds afterwards (0 for zeroes, discards). */
  fill: number;
  offset: number;
  length: number;
}

const words = (...parts: string[]): string => parts.filter((p) => p !== '').join(' ');
const pattern = (fill: number, offset: number, length: number, flags = ''): Step => ({ command: words('write', flags, '-P', `0x${fill.toString(16)}`, `${offset}`, `${length}`), fill, offset, length });
const zeroes = (flags: string, offset: number, length: number): Step => ({ command: words('write -z', flags, `${offset}`, `${length}`), fill: 0, offset, length });

const steps: Step[] = [
  pattern(0xa1, 0, MiB),
  pattern(0xa2, MiB, 512), // small and not block aligned
  pattern(0xa3, 2 * MiB, 64 * KiB, '-f'), // FUA
  pattern(0xa4, 4 * MiB, 2 * MiB),
  { command: `discard ${4 * MiB} ${MiB}`, fill: 0, offset: 4 * MiB, length: MiB },
  pattern(0xa5, 8 * MiB, MiB),
  zeroes('', 8 * MiB, 256 * KiB), // WRITE_ZEROES with NO_HOLE
  pattern(0xa6, 12 * MiB, MiB),
  zeroes('-u', 12 * MiB, MiB), // WRITE_ZEROES, may punch a hole
  pattern(0xa7, 16 * MiB, MiB),
  zeroes('-u -n', 16 * MiB, 512 * KiB), // FAST_ZERO
  pattern(0xa8, 63 * MiB + 4000, MiB - 4000), // up to the last byte
];

/** Several writes in flight at once on one connection, each to its own range. */
const aioSteps: Step[] = Array.from({ length: 8 }, (_, i) => ({ command: '', fill: 0xb0 + i, offset: 20 * MiB + i * 300 * KiB, length: 300 * KiB }));

test('qemu-io: pattern writes, write -z (-u, -n), discard, FUA, aio writes and flush read back right', async (t) => {
  const server = await startServer(t, { size: '64M' });
  const writes = [
    ...steps.map((s) => s.command),
    ...aioSteps.map((s) => `aio_write -P 0x${s.fill.toString(16)} ${s.offset} ${s.length}`),
    'aio_flush',
    'flush',
  ];
  await runOk('qemu-io', ['-f', 'raw', ...writes.flatMap((c) => ['-c', c]), server.uri]);

  // The model: what every byte must hold now.
  const model = Buffer.alloc(64 * MiB);
  for (const s of [...steps, ...aioSteps]) model.fill(s.fill, s.offset, s.offset + s.length);

  // Read back through a new connection, range by range (qemu-io exits 1 on any pattern mismatch).
  const reads: string[] = [];
  for (let offset = 0; offset < model.length; ) {
    let end = offset + 1;
    while (end < model.length && model[end] === model[offset] && end - offset < 8 * MiB) end += 1;
    reads.push(`read -P 0x${model[offset]!.toString(16)} ${offset} ${end - offset}`);
    offset = end;
  }
  assert.ok(reads.length > 20, 'the model has many ranges');
  const out = await runOk('qemu-io', ['-f', 'raw', ...reads.flatMap((c) => ['-c', c]), server.uri]);
  assert.doesNotMatch(out, /verification failed/i);

  // After a clean stop the store file holds exactly the model.
  const stopped = await server.stop('SIGTERM');
  assert.equal(stopped.code, 0);
  const stored = readFileSync(server.storePath);
  assert.equal(stored.length, model.length);
  if (!stored.equals(model)) assert.fail(`store differs from the model at byte ${stored.findIndex((b, i) => b !== model[i])}`);
});
