// nbdfuse (libnbd) mounts the export as one file; mkfs.ext4 builds a file system in it, debugfs
// stores a file in it, e2fsck finds it clean, through FUSE and again on the store file itself.
import assert from 'node:assert/strict';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { clientEnv, randomFile, runOk } from './helpers/nbd-clients.js';
import { startServer } from './helpers/nbd-server.js';
import { run, spawnCollected } from './helpers/process.js';
import { tempDir } from './helpers/tmp.js';

/** Why nbdfuse cannot run here, or null when it can. */
function fuseUnavailable(): string | null {
  if (!existsSync('/dev/fuse')) return '/dev/fuse does not exist on this machine';
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    return '/dev/fuse is not readable and writable by this user';
  }
  for (const tool of ['/usr/bin/nbdfuse', '/usr/bin/fusermount3']) if (!existsSync(tool)) return `${tool} is not installed`;
  return null;
}

test('nbdfuse + mkfs.ext4 + e2fsck -fn: a file system on the export is clean and keeps its files', { skip: fuseUnavailable() ?? false }, async (t) => {
  const server = await startServer(t, { size: '64M' });
  // Teardown hooks run in the order they are registered: unmount (nbdfuse then exits) before
  // the mountpoint's folder is removed, so the mountpoint is a temp folder of its own.
  let mounted = false;
  let mountpoint = '';
  t.after(async () => {
    if (mounted) await run('fusermount3', ['-u', mountpoint]);
  });
  mountpoint = tempDir(t, 'mirrorbox-fuse-');
  const image = join(mountpoint, 'disk.img');
  const pidFile = join(server.dir, 'nbdfuse.pid');
  const fuse = spawnCollected(t, 'nbdfuse', ['-P', pidFile, image, server.uri], { env: clientEnv() });
  mounted = true;
  for (let waited = 0; !existsSync(pidFile); waited += 50) {
    if (waited > 20_000 || fuse.child.exitCode !== null) assert.fail(`nbdfuse did not come up: ${fuse.stderr()}`);
    await sleep(50);
  }

  const payload = join(server.dir, 'payload.bin');
  const content = randomFile(payload, 3 * 1024 * 1024 + 17);
  await runOk('mkfs.ext4', ['-q', '-F', image]);
  await runOk('debugfs', ['-w', '-R', `write ${payload} payload.bin`, image]);
  await runOk('e2fsck', ['-fn', image]);
  const viaFuse = join(server.dir, 'via-fuse.bin');
  await runOk('debugfs', ['-R', `dump /payload.bin ${viaFuse}`, image]);
  assert.ok(readFileSync(viaFuse).equals(content), 'the file read back through nbdfuse differs');

  // Unmount, stop the server cleanly, and check the store file itself.
  await runOk('fusermount3', ['-u', mountpoint]);
  mounted = false;
  assert.equal((await fuse.exited).code, 0, `nbdfuse: ${fuse.stderr()}`);
  assert.equal((await server.stop('SIGTERM')).code, 0);
  await runOk('e2fsck', ['-fn', server.storePath]);
  const dumped = join(server.dir, 'dumped.bin');
  await runOk('debugfs', ['-R', `dump /payload.bin ${dumped}`, server.storePath]);
  assert.ok(readFileSync(dumped).equals(content), 'the file read back from the file system differs');
});
