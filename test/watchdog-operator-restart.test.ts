/**
 * `mirrorbox watchdog restart`: the way out of a held incident without restarting the
 * watchdog. A crash loop with a one-restart budget ends in `hold`; the operator fixes the cause
 * and runs the command: the journal shows the incident closed by the operator, then the start
 * and readiness of the held process, and the process runs again. Also: every incident in the
 * journal is closed by exactly one `resolved` (stable for stableMs) or `resolve` (operator).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JournalEntry } from '../src/watchdog/journal.js';
import { requestStatus } from '../src/watchdog/watchdog.js';
import { cliPath } from './helpers/paths.js';
import { run } from './helpers/process.js';
import { alive, serviceCommand, startWatchdog, waitForJournal, watchdogApp } from './helpers/watchdog.js';

const cli = (...args: string[]): ReturnType<typeof run> => run(process.execPath, [cliPath, ...args]);
/** Exit status of a command that failed with a MirrorboxError (src/cli/watchdog-common.ts). */
const exitTypedError = 2;

function index(entries: readonly JournalEntry[], match: (e: JournalEntry, i: number) => boolean, what: string): number {
  const i = entries.findIndex(match);
  assert.ok(i >= 0, `no ${what} in the journal`);
  return i;
}

test('watchdog restart ends a hold: resolve, then start and ready in order; the process runs again', async (t) => {
  // (The processes run in the config's folder: the relative crash file is the test's `crashFile`.)
  const { dir, config, stateDir, journal } = watchdogApp(
    t,
    `ladder: [restart-failed]
attemptsPerRung: 5
onExhausted: hold
stableMs: 300
backoff: { initialMs: 10, maxMs: 20 }
budget: { restarts: 1, windowSeconds: 3600 }
processes:
  - { name: a, command: ${serviceCommand('a')}, ready: { stdout: "^ready a" } }
  - { name: b, command: ${serviceCommand('b', '--crash-if-file', 'crash', '--crash-delay-ms', '100')}, ready: { stdout: "^ready b" } }
  - { name: c, command: ${serviceCommand('c')}, ready: { stdout: "^ready c" } }
`,
  );
  const crashFile = join(dir, 'crash');
  await startWatchdog(t, config, stateDir, journal);

  // b now crashes 100 ms after every start: the one restart the budget allows does not hold.
  writeFileSync(crashFile, '');
  const first = (await requestStatus(stateDir)).supervisor.processes.find((p) => p.name === 'b')!.pid!;
  process.kill(first, 'SIGKILL');
  const held = await waitForJournal(journal, (es) => es.some((e) => e.event === 'hold'), 15_000, 'hold');
  const hold = held.find((e) => e.event === 'hold')!;
  assert.equal(hold.process, 'b');
  assert.match(hold.cause!, /restart budget exceeded/);
  const heldStatus = await requestStatus(stateDir);
  assert.equal(heldStatus.supervisor.incident?.held, true);
  assert.deepEqual(heldStatus.supervisor.processes.map((p) => p.state), ['running', 'held', 'running']);
  const [pidA, pidC] = [heldStatus.supervisor.processes[0]!.pid!, heldStatus.supervisor.processes[2]!.pid!];

  // Held means held: nothing is tried however long we wait.
  await new Promise((r) => setTimeout(r, 500));
  const quiet = await waitForJournal(journal, () => true);
  assert.equal(quiet.filter((e) => e.event === 'start' && e.process === 'b').length, 2, 'no start while held');

  // A process that is running is left alone; an unknown name is refused with its code.
  const unknown = await cli('watchdog', 'restart', '-c', config, 'nosuch');
  assert.equal(unknown.code, exitTypedError);
  assert.equal(unknown.stderr, 'mirrorbox: no process named "nosuch" (configured: a, b, c) (UNKNOWN_PROCESS)\n');

  // The operator fixes the cause and restarts what is held.
  rmSync(crashFile);
  const restart = await cli('watchdog', 'restart', '-c', config);
  assert.equal(restart.code, 0, restart.stderr);
  assert.match(restart.stdout, /^starting b\nb ready \(pid \d+\) in \d+ ms\nincident \S+ resolved\nrestarted b\n$/);

  const entries = await waitForJournal(journal, () => true);
  const iHold = index(entries, (e) => e.event === 'hold', 'hold');
  const iResolve = index(entries, (e) => e.event === 'resolve', 'resolve');
  const iStart = index(entries, (e, i) => i > iResolve && e.event === 'start' && e.process === 'b', 'start of b after resolve');
  const iReady = index(entries, (e, i) => i > iStart && e.event === 'ready' && e.process === 'b', 'ready of b after its start');
  assert.ok(iHold < iResolve && iResolve < iStart && iStart < iReady, `order: hold ${iHold}, resolve ${iResolve}, start ${iStart}, ready ${iReady}`);
  const resolve = entries[iResolve]!;
  assert.equal(resolve.incident, hold.incident);
  assert.match(resolve.cause!, /^resolved by the operator \(watchdog restart b\)/);
  assert.equal(entries[iStart]!.cause, 'watchdog restart (operator)');
  assert.equal(entries[iStart]!.incident, null);
  // Nothing else was touched.
  assert.deepEqual(entries.slice(iResolve + 1).filter((e) => e.process !== 'b').map((e) => e.event), []);

  const pidB = entries[iReady]!.pid!;
  assert.ok(alive(pidB));
  const after = await requestStatus(stateDir);
  assert.equal(after.supervisor.incident, null);
  assert.deepEqual(after.supervisor.processes.map((p) => [p.name, p.state, p.pid]), [['a', 'running', pidA], ['b', 'running', pidB], ['c', 'running', pidC]]);
  const table = await cli('watchdog', 'status', '-c', config);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, new RegExp(`^b +${pidB} +running +`, 'm'));
  assert.match(table.stdout, /^no open incident$/m);

  // Named and running: left alone.
  const noop = await cli('watchdog', 'restart', '-c', config, 'a', '--json');
  assert.equal(noop.code, 0, noop.stderr);
  assert.deepEqual(JSON.parse(noop.stdout), { started: [], alreadyRunning: ['a'], resolved: null, held: [] });

  // The budget starts afresh: the next failure is remedied again, and closes by itself.
  process.kill(pidA, 'SIGKILL');
  const later = await waitForJournal(journal, (es) => es.slice(iReady).some((e) => e.event === 'resolved'), 15_000, 'a remedied');
  assert.ok(later.slice(iReady).some((e) => e.event === 'ready' && e.process === 'a'));

  // Every incident opens (its first entry) and closes once, with its last entry.
  const incidents = [...new Set(later.flatMap((e) => (e.incident === null ? [] : [e.incident])))];
  assert.equal(incidents.length, 2);
  for (const id of incidents) {
    const its = later.filter((e) => e.incident === id);
    assert.deepEqual(its.filter((e) => e.event === 'resolve' || e.event === 'resolved').length, 1, `incident ${id} closes once`);
    assert.match(its.at(-1)!.event, /^resolved?$/, `incident ${id} ends with its closing`);
  }
});

test('watchdog restart of a process that cannot start: RESTART_FAILED with the cause, and the ladder takes over', async (t) => {
  const { config, stateDir, journal } = watchdogApp(
    t,
    `ladder: [restart-failed]
onExhausted: hold
stableMs: 100
backoff: { initialMs: 10, maxMs: 20 }
processes:
  - { name: a, command: ${serviceCommand('a')}, ready: { stdout: "^ready a" } }
  - { name: broken, command: [/bin/sh, -c, "exit 7"], ready: { stdout: "^never" } }
`,
  );
  await startWatchdog(t, config, stateDir, journal);
  await waitForJournal(journal, (es) => es.some((e) => e.event === 'hold' && e.process === 'broken'), 15_000, 'hold');

  const restart = await cli('watchdog', 'restart', '-c', config, 'broken');
  assert.equal(restart.code, exitTypedError);
  assert.match(restart.stderr, /^mirrorbox: broken did not start: exited with code 7 .* \(RESTART_FAILED\)\n$/);
  // The failure opened a new incident; the ladder tried it and holds again.
  const entries = await waitForJournal(journal, (es) => es.filter((e) => e.event === 'hold').length === 2, 15_000, 'second hold');
  const [firstHold, secondHold] = entries.filter((e) => e.event === 'hold');
  assert.notEqual(firstHold!.incident, secondHold!.incident);
  assert.equal(entries.find((e) => e.event === 'resolve')!.incident, firstHold!.incident);
  const status = await requestStatus(stateDir);
  assert.deepEqual(status.supervisor.processes.map((p) => p.state), ['running', 'held']);
});
