/**
 * A stop that arrives while the watchdog is still starting the application (here: while the
 * first process has not yet said it is ready) ends everything the watchdog set going: the
 * embedding program then ends by itself, with nothing left running.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { repoRoot } from './helpers/paths.js';
import { spawnCollected } from './helpers/process.js';
import { readEntries, serviceCommand, sparesIn, watchdogApp } from './helpers/watchdog.js';

const embeddedPath = join(repoRoot, 'dist', 'test', 'fixtures', 'watchdog-embedded.js');

test('a watchdog stopped during its start-up leaves no timer behind: the program embedding it exits by itself', async (t) => {
  const app = watchdogApp(
    t,
    `ladder: [restart-failed]
processes:
  - { name: slow, command: ${serviceCommand('slow', '--start-delay-ms', '300')}, ready: { stdout: "^ready slow" } }
  - { name: next, command: ${serviceCommand('next')}, ready: { stdout: "^ready next" } }
`,
  );
  const proc = spawnCollected(t, process.execPath, [embeddedPath, app.config], { env: { ...process.env, MIRRORBOX_LOG_LEVEL: 'warn' } });
  await proc.waitForLine(/^stopped$/, 20_000);
  const boundMs = 5_000;
  const exit = await Promise.race([proc.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), boundMs))]);
  assert.notEqual(exit, 'timeout', `the program did not end within ${boundMs} ms of the watchdog's stop (something still holds its event loop)`);
  assert.deepEqual(exit, { code: 0, signal: null }, proc.stderr());
  const entries = readEntries(app.journal);
  assert.deepEqual(entries.filter((e) => e.event === 'start').map((e) => e.process), ['slow'], 'nothing started after the stop');
  assert.equal(entries.at(-1)!.event, 'watchdog');
  assert.deepEqual(sparesIn(app.dir), []);
});
