// Whole-disk copies through real clients: nbdcopy (libnbd, multi-connection) and qemu-img
// convert/compare, in both directions, checked byte for byte.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { randomFile, runOk } from './helpers/nbd-clients.js';
import { run } from './helpers/process.js';
import { startServer } from './helpers/nbd-server.js';

const MiB = 1024 * 1024;
const copyBytes = 96 * MiB;

test('nbdcopy round trip of random data: file -> export -> file, byte for byte', async (t) => {
  const server = await startServer(t, { size: `${copyBytes / MiB}M` });
  const source = join(server.dir, 'source.bin');
  const back = join(server.dir, 'back.bin');
  const content = randomFile(source, copyBytes);
  // Several connections and requests in flight (nbdcopy uses multi-conn when offered).
  await runOk('nbdcopy', ['--connections=4', '--requests=16', '--flush', source, server.uri]);
  await runOk('nbdcopy', ['--connections=4', '--requests=16', server.uri, back]);
  const copied = readFileSync(back);
  assert.equal(copied.length, content.length);
  assert.ok(copied.equals(content), 'the data read back differs from the data written');
  // The store file itself holds the same bytes (nothing stuck in the server).
  assert.ok(readFileSync(server.storePath).equals(content), 'the store file differs from the data written');
});

test('qemu-img convert to and from the export; qemu-img compare finds them identical', async (t) => {
  const server = await startServer(t, { size: '64M' });
  const qcow = join(server.dir, 'src.qcow2');
  const back = join(server.dir, 'back.qcow2');
  // A sparse qcow2 with data, zeroed ranges and holes, so convert sends writes and zeroes.
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', qcow, '64M']);
  await runOk('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 3M', '-c', 'write -P 0x22 10M 64k', '-c', 'write -P 0x33 40M 8M', '-c', 'write -z 41M 1M', '-c', 'write -P 0x44 63M 1M', qcow]);
  // Dirty the export first, so a convert that skipped the zero ranges would be caught.
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0xee 0 64M', server.uri]);
  await runOk('qemu-img', ['convert', '-n', '-f', 'qcow2', '-O', 'raw', qcow, server.uri]);
  const compare = await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', qcow, server.uri]);
  assert.equal(compare.code, 0, `qemu-img compare: ${compare.stdout} ${compare.stderr}`);
  assert.match(compare.stdout, /Images are identical/);

  // Back from the export into a new qcow2.
  await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', server.uri, back]);
  const compareBack = await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', qcow, back]);
  assert.equal(compareBack.code, 0, `qemu-img compare: ${compareBack.stdout} ${compareBack.stderr}`);

  // compare does see a difference: change one byte on the export.
  await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x12 40M 1', server.uri]);
  const differs = await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', qcow, server.uri]);
  assert.equal(differs.code, 1, `qemu-img compare after a change: ${differs.stdout} ${differs.stderr}`);
  assert.match(differs.stdout, /Content mismatch at offset 41943040!/);
});
