/**
 * The control socket answers `stop` and `restart` to whoever connects: no other local user may
 * ever reach it. The watchdog is run here under umask 000 (the worst a start script can leave),
 * and the state folder it creates and the socket in it must still be closed to group and other
 * users.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { statePaths } from '../src/watchdog/state.js';
import { requestStatus } from '../src/watchdog/watchdog.js';
import { serviceCommand, startWatchdog, watchdogApp } from './helpers/watchdog.js';

function modeOf(path: string): number {
  return statSync(path).mode & 0o777;
}

test('under umask 000 the state folder is created 0700 and the control socket is 0600', async (t) => {
  const { config, stateDir, journal } = watchdogApp(
    t,
    `ladder: [restart-failed]
processes:
  - { name: a, command: ${serviceCommand('a')}, ready: { stdout: "^ready a" } }
`,
  );
  const before = process.umask(0);
  let w;
  try {
    w = startWatchdog(t, config, stateDir, journal);
  } finally {
    process.umask(before);
  }
  await w;
  const socket = statePaths(stateDir).socket;
  assert.ok(statSync(socket).isSocket());
  assert.equal(modeOf(socket), 0o600, `socket mode ${modeOf(socket).toString(8)}`);
  assert.equal(modeOf(stateDir), 0o700, `state folder mode ${modeOf(stateDir).toString(8)}`);
  // The output pipe beside it (the process's stdout and stderr) is the owner's only, too.
  const pipe = join(stateDir, 'a.pipe');
  assert.ok(statSync(pipe).isFIFO());
  assert.equal(modeOf(pipe), 0o600, `pipe mode ${modeOf(pipe).toString(8)}`);
  // And it is the socket the watchdog answers on.
  assert.equal((await requestStatus(stateDir)).watchdog.socket, socket);
});
