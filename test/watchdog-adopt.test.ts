/**
 * The watchdog as its own process (W8): killed and started again, it adopts the processes that
 * are still running (pid + start time from /proc, as its state file recorded them) instead of
 * starting duplicates, and keeps guarding them though they are no longer its children.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requestStatus } from '../src/watchdog/watchdog.js';
import { readStateFile, statePaths } from '../src/watchdog/state.js';
import { alive, freePort, serviceCommand, startWatchdog, steps, waitForJournal, waitUntil, watchdogDir, writeConfig } from './helpers/watchdog.js';
import { run } from './helpers/process.js';
import { cliPath } from './helpers/paths.js';

async function threeProcesses(dir: string, events: string, extraHead = ''): Promise<string> {
  const lines = ['journal: ./var/watchdog.jsonl', 'checkIntervalMs: 50', 'ladder: [restart-failed, partial-restart]', 'stableMs: 300', extraHead, 'processes:'];
  for (const name of ['a', 'b', 'c']) {
    const port = await freePort();
    lines.push(`  - name: ${name}`, `    command: ${serviceCommand(name, '--port', String(port), '--events', events)}`, `    ready: { tcp: "127.0.0.1:${port}" }`);
  }
  return writeConfig(dir, lines.join('\n') + '\n');
}

/** "start NAME PID" lines the fixtures wrote: one per process ever started. */
function startsOf(events: string): string[] {
  return readFileSync(events, 'utf8').split('\n').filter((l) => l.startsWith('start '));
}

test('a watchdog killed with SIGKILL is restarted: it adopts a, b, c (no duplicates) and still guards them', async (t) => {
  const dir = watchdogDir(t);
  const events = join(dir, 'events');
  const config = await threeProcesses(dir, events);
  const journal = join(dir, 'var', 'watchdog.jsonl');
  const stateDir = join(dir, 'var');
  const first = await startWatchdog(t, config, stateDir, journal);
  const pids = (await requestStatus(stateDir)).supervisor.processes.map((p) => p.pid);
  assert.equal(startsOf(events).length, 3);
  await waitUntil(() => readStateFile(statePaths(stateDir).state)!.processes.every((p) => p.state === 'running'), 5000, 'state file written');

  first.proc.child.kill('SIGKILL');
  await first.proc.exited;
  for (const pid of pids) assert.ok(alive(pid!), 'processes outlive their watchdog');

  const from = (await waitForJournal(journal, () => true)).length;
  await startWatchdog(t, config, stateDir, journal);
  const after = (await waitForJournal(journal, () => true)).slice(from);
  assert.deepEqual(steps(after, ['adopt', 'start', 'stop']), ['adopt:a', 'adopt:b', 'adopt:c']);
  assert.deepEqual(after.filter((e) => e.event === 'adopt').map((e) => e.pid), pids);
  assert.match(after.find((e) => e.event === 'adopt')!.cause!, /^still running from watchdog \d+$/);
  // Nothing was started twice; and the first watchdog's spare shells, whose pipe closed when it
  // died, exited without running their command (they would have written "start" lines).
  assert.equal(startsOf(events).length, 3, 'nothing was started twice');
  const s = (await requestStatus(stateDir)).supervisor.processes;
  assert.deepEqual(s.map((p) => [p.pid, p.state, p.adopted]), pids.map((pid) => [pid, 'running', true]));

  // b is not a child of this watchdog: its death shows only in /proc (as a zombie here, where
  // PID 1 does not reap orphans, or as gone where it does).
  const from2 = (await waitForJournal(journal, () => true)).length;
  process.kill(pids[1]!, 'SIGKILL');
  const remedy = (await waitForJournal(journal, (es) => es.slice(from2).some((e) => e.event === 'resolved'), 10_000, 'adopted b restarted')).slice(from2);
  assert.deepEqual(steps(remedy), ['exit:b', 'start:b', 'ready:b']);
  assert.match(remedy[0]!.cause!, /^(exited \(zombie in \/proc\)|vanished from \/proc)$/);
  assert.equal(startsOf(events).length, 4);

  // `watchdog stop` stops adopted processes too, in reverse order.
  const r = await run(process.execPath, [cliPath, 'watchdog', 'stop', '-c', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.split('\n').filter((l) => l.startsWith('stopping')).map((l) => l.split(' ')[1]), ['c', 'b', 'a']);
  assert.ok(!alive(pids[0]!) && !alive(pids[2]!));
});

test('stop --keep-processes hands over to the next watchdog; a dead first process restarts the rest in order', async (t) => {
  const dir = watchdogDir(t);
  const events = join(dir, 'events');
  const config = await threeProcesses(dir, events);
  const journal = join(dir, 'var', 'watchdog.jsonl');
  const stateDir = join(dir, 'var');
  const first = await startWatchdog(t, config, stateDir, journal);
  const pids = (await requestStatus(stateDir)).supervisor.processes.map((p) => p.pid!);
  const r = await run(process.execPath, [cliPath, 'watchdog', 'stop', '-c', config, '--keep-processes']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /watchdog stopped; processes left running/);
  await first.proc.exited;
  assert.ok(pids.every(alive));
  assert.equal(readStateFile(statePaths(stateDir).state)!.watchdog.state, 'detached');

  // While no watchdog runs, a (the first in start order) dies. b and c depend on it: the next
  // watchdog must not adopt them past the gap, but stop them (reverse) and start a, b, c.
  process.kill(pids[0]!, 'SIGKILL');
  const from = (await waitForJournal(journal, () => true)).length;
  await startWatchdog(t, config, stateDir, journal);
  const after = (await waitForJournal(journal, () => true)).slice(from);
  assert.deepEqual(steps(after, ['adopt', 'stop', 'start', 'ready']), ['stop:c', 'stop:b', 'start:a', 'ready:a', 'start:b', 'ready:b', 'start:c', 'ready:c']);
  assert.equal(after.find((e) => e.event === 'stop')!.cause, 'restarting from a, which is not running');
  assert.ok(!alive(pids[1]!) && !alive(pids[2]!));
  assert.equal(startsOf(events).length, 6);
});

test('a second watchdog on the same state folder is refused while the first runs', async (t) => {
  const dir = watchdogDir(t);
  const config = await threeProcesses(dir, join(dir, 'events'));
  const stateDir = join(dir, 'var');
  await startWatchdog(t, config, stateDir, join(stateDir, 'watchdog.jsonl'));
  const r = await run(process.execPath, [cliPath, 'watchdog', 'run', config]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^mirrorbox: a watchdog \(pid \d+\) already runs with state in .* \(WATCHDOG_RUNNING\)\n$/);
});

test('hardware watchdog: fed while the watchdog runs, disarmed with the magic "V" on a clean stop', async (t) => {
  // No /dev/watchdog on this machine: the device is a regular file, which records every write.
  const dir = watchdogDir(t);
  const device = join(dir, 'watchdog-device');
  writeFileSync(device, '');
  const config = await threeProcesses(dir, join(dir, 'events'), `hardwareWatchdog: { device: "${device}", everyMs: 50 }`);
  const stateDir = join(dir, 'var');
  const w = await startWatchdog(t, config, stateDir, join(stateDir, 'watchdog.jsonl'));
  await waitUntil(() => readFileSync(device, 'latin1').length >= 4, 10_000, 'four feeds');
  const fed = readFileSync(device, 'latin1');
  assert.match(fed, /^\.{4,}$/, 'fed every 50 ms, never the magic character');
  assert.ok((await requestStatus(stateDir)).watchdog.hardwareFeeds! >= 4);
  w.proc.child.kill('SIGTERM');
  assert.deepEqual(await w.proc.exited, { code: 0, signal: null });
  assert.match(readFileSync(device, 'latin1'), /^\.+V$/);
});

test('an instance started just before the watchdog died, missing from its state file, is stopped, not run twice', async (t) => {
  const dir = watchdogDir(t);
  const events = join(dir, 'events');
  const config = await threeProcesses(dir, events);
  const journal = join(dir, 'var', 'watchdog.jsonl');
  const stateDir = join(dir, 'var');
  const statePath = statePaths(stateDir).state;
  const first = await startWatchdog(t, config, stateDir, journal);
  await waitUntil(() => readStateFile(statePath)!.processes.every((p) => p.state === 'running'), 5000, 'state file written');
  const before = readFileSync(statePath, 'utf8');
  const oldB = (await requestStatus(stateDir)).supervisor.processes[1]!.pid!;

  // b is restarted; then the watchdog dies, and the state file is what it was before the
  // restart: exactly what a crash between the spawn and the state write that follows leaves.
  process.kill(oldB, 'SIGKILL');
  const restarted = await waitForJournal(journal, (es) => es.some((e) => e.event === 'ready' && e.process === 'b' && e.pid !== oldB), 10_000, 'b restarted');
  const newB = restarted.filter((e) => e.event === 'ready' && e.process === 'b').at(-1)!.pid!;
  first.proc.child.kill('SIGKILL');
  await first.proc.exited;
  writeFileSync(statePath, before);
  assert.ok(alive(newB));

  const from = (await waitForJournal(journal, () => true)).length;
  await startWatchdog(t, config, stateDir, journal);
  const after = (await waitForJournal(journal, () => true)).slice(from);
  // a is adopted; b's record names a dead pid, so b and c are started again (c stopped first),
  // and the unrecorded b is stopped before the new one starts.
  assert.deepEqual(steps(after, ['adopt', 'stop', 'start', 'ready']), ['adopt:a', 'stop:c', 'stop:b', 'start:b', 'ready:b', 'start:c', 'ready:c']);
  const strayStop = after.find((e) => e.event === 'stop' && e.process === 'b')!;
  assert.equal(strayStop.pid, newB);
  assert.match(strayStop.cause!, /not in the state file/);
  assert.ok(!alive(newB), 'the unrecorded instance is gone');
  const s = (await requestStatus(stateDir)).supervisor.processes;
  assert.deepEqual(s.map((p) => p.state), ['running', 'running', 'running']);
  // Exactly one live b: the one the new watchdog started.
  const liveB = startsOf(events).map((l) => Number(l.split(' ')[2])).filter((pid) => alive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('\0b\0'));
  assert.deepEqual(liveB, [s[1]!.pid]);
});

test('a process that died while no watchdog ran leaves children: they are stopped with its group before the restart', async (t) => {
  const dir = watchdogDir(t);
  const grandchildFile = join(dir, 'grandchild.pid');
  const config = writeConfig(
    dir,
    `
journal: ./var/watchdog.jsonl
checkIntervalMs: 50
ladder: [restart-failed]
processes:
  - name: tree
    command: ${serviceCommand('tree', '--grandchild', grandchildFile)}
    ready: { stdout: "^ready tree" }
    stop: { signal: SIGTERM, timeoutMs: 300 }
`,
  );
  const stateDir = join(dir, 'var');
  const journal = join(stateDir, 'watchdog.jsonl');
  const first = await startWatchdog(t, config, stateDir, journal);
  await waitUntil(() => readStateFile(statePaths(stateDir).state)!.processes[0]!.state === 'running', 5000, 'state file written');
  const leader = (await requestStatus(stateDir)).supervisor.processes[0]!.pid!;
  const grandchild = Number(readFileSync(grandchildFile, 'utf8'));
  first.proc.child.kill('SIGKILL');
  await first.proc.exited;
  process.kill(leader, 'SIGKILL');
  await waitUntil(() => !alive(leader), 5000, 'leader gone');
  assert.ok(alive(grandchild), 'its child (same group, ignores SIGTERM) lives on');

  const from = (await waitForJournal(journal, () => true)).length;
  await startWatchdog(t, config, stateDir, journal);
  const after = (await waitForJournal(journal, () => true)).slice(from);
  assert.deepEqual(steps(after, ['adopt', 'stop', 'kill', 'start', 'ready']), ['stop:tree', 'kill:tree', 'start:tree', 'ready:tree']);
  assert.equal(after.find((e) => e.event === 'stop')!.cause, 'processes left in its group');
  assert.ok(!alive(grandchild), 'the orphaned child was stopped with its group');
});
