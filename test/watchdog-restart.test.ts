/**
 * Real watchdog, real processes: SIGKILL, SIGTERM and SIGSTOP sent to a supervised child, and
 * what the watchdog journals and does about each.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { requestStatus } from '../src/watchdog/watchdog.js';
import type { JournalEntry } from '../src/watchdog/journal.js';
import { alive, freePort, sparesIn, watchdogDir, serviceCommand, startWatchdog, waitForJournal, waitUntil, writeConfig } from './helpers/watchdog.js';

test('signals to children: each failure is detected, journaled with its cause and remedied', async (t) => {
  const dir = watchdogDir(t);
  const [portA, portB] = [await freePort(), await freePort()];
  const config = writeConfig(
    dir,
    `
name: signals
journal: ./var/watchdog.jsonl
checkIntervalMs: 50
ladder: [restart-failed, partial-restart, full-restart]
stableMs: 300
backoff: { initialMs: 50, maxMs: 200 }
processes:
  - name: a
    command: ${serviceCommand('a', '--port', String(portA))}
    ready: { tcp: "127.0.0.1:${portA}" }
  - name: b
    command: ${serviceCommand('b', '--port', String(portB))}
    ready: { http: "http://127.0.0.1:${portB}/" }
    stop: { signal: SIGTERM, timeoutMs: 2000 }
  - name: c
    command: ${serviceCommand('c')}
    ready: { stdout: "^ready c" }
    spare: false
`,
  );
  const journal = join(dir, 'var', 'watchdog.jsonl');
  const stateDir = join(dir, 'var');
  await startWatchdog(t, config, stateDir, journal);
  const pidOf = async (name: string): Promise<number> => (await requestStatus(stateDir)).supervisor.processes.find((p) => p.name === name)!.pid!;
  const firstA = await pidOf('a');

  /** Sends `signal` to `name` and returns the journal entries of the incident it opens. */
  const hit = async (name: string, signal: NodeJS.Signals): Promise<{ incident: JournalEntry[]; oldPid: number }> => {
    const oldPid = await pidOf(name);
    const startSeq = (await waitForJournal(journal, () => true)).length;
    process.kill(oldPid, signal);
    const entries = await waitForJournal(
      journal,
      (es) => es.slice(startSeq).some((e) => e.event === 'resolved'),
      15_000,
      `${name} remedied after ${signal}`,
    );
    const opened = entries.slice(startSeq).find((e) => e.incident !== null)!;
    return { incident: entries.filter((e) => e.incident === opened.incident), oldPid };
  };

  await t.test('SIGKILL: exit seen at once, cause "killed by SIGKILL", restarted and ready', async () => {
    const { incident, oldPid } = await hit('b', 'SIGKILL');
    assert.deepEqual(
      incident.map((e) => `${e.event}:${e.process ?? '-'}`),
      ['exit:b', 'restart:-', 'start:b', 'ready:b', 'resolved:-'],
    );
    const exit = incident[0]!;
    assert.equal(exit.cause, 'killed by SIGKILL');
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.pid, oldPid);
    assert.equal(incident[1]!.rung, 'restart-failed');
    assert.notEqual(incident[2]!.pid, oldPid);
    assert.equal(incident[2]!.pid, incident[3]!.pid);
    assert.deepEqual(incident[2]!.detail, { spare: true }, 'the restart used the spare shell forked after the last start');
    assert.ok(incident[1]!.timeUs - exit.timeUs < 100_000, 'remedy began within 100 ms of the exit');
    assert.ok(!alive(oldPid));
  });

  await t.test('SIGTERM: the service exits cleanly (code 0) yet was not asked to: restarted', async () => {
    const { incident } = await hit('a', 'SIGTERM');
    assert.equal(incident[0]!.event, 'exit');
    assert.equal(incident[0]!.cause, 'exited with code 0');
    assert.equal(incident[0]!.exitCode, 0);
    assert.deepEqual(
      incident.map((e) => `${e.event}:${e.process ?? '-'}`),
      ['exit:a', 'restart:-', 'start:a', 'ready:a', 'resolved:-'],
    );
  });

  await t.test('SIGSTOP: /proc shows state T; the stopped process is stopped for good and replaced', async () => {
    const { incident, oldPid } = await hit('b', 'SIGSTOP');
    assert.deepEqual(
      incident.map((e) => `${e.event}:${e.process ?? '-'}`),
      ['fail:b', 'restart:-', 'stop:b', 'start:b', 'ready:b', 'resolved:-'],
    );
    assert.equal(incident[0]!.cause, 'stopped (SIGSTOP, state T)');
    assert.equal(incident[2]!.pid, oldPid);
    assert.equal(incident[2]!.signal, 'SIGTERM', 'the stop signal, followed by SIGCONT so it can act on it');
    assert.ok(!alive(oldPid));
  });

  await t.test('with spare: false the restart spawns directly', async () => {
    const { incident } = await hit('c', 'SIGKILL');
    assert.deepEqual(incident.map((e) => `${e.event}:${e.process ?? '-'}`), ['exit:c', 'restart:-', 'start:c', 'ready:c', 'resolved:-']);
    assert.deepEqual(incident[2]!.detail, { spare: false });
  });

  await t.test('status shows restarts and the last cause; a was restarted once, b twice', async () => {
    const s = (await requestStatus(stateDir)).supervisor;
    const a = s.processes.find((p) => p.name === 'a')!;
    const b = s.processes.find((p) => p.name === 'b')!;
    assert.equal(a.state, 'running');
    assert.equal(a.restarts, 1);
    assert.equal(a.lastCause, 'exited with code 0');
    assert.notEqual(a.pid, firstA);
    assert.equal(b.restarts, 2);
    assert.equal(b.lastCause, 'stopped (SIGSTOP, state T)');
    assert.equal(s.rungCounters['restart-failed'], 4);
    assert.equal(s.incidents, 4);
    assert.equal(s.incident, null);
  });
});

/** The nice value of a process (field 19 of /proc/PID/stat). */
function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

test('nice: the watchdog raises its own priority; the processes it starts (directly or from a spare) keep the base one', async (t) => {
  const dir = watchdogDir(t);
  const config = writeConfig(
    dir,
    `
journal: ./var/watchdog.jsonl
checkIntervalMs: 50
ladder: [restart-failed]
stableMs: 100
nice: -10
processes:
  - { name: a, command: ${serviceCommand('a')}, ready: { stdout: "^ready a" } }
`,
  );
  const stateDir = join(dir, 'var');
  const journal = join(stateDir, 'watchdog.jsonl');
  const w = await startWatchdog(t, config, stateDir, journal);
  const base = niceOf(process.pid);
  assert.equal(niceOf(w.proc.child.pid!), -10);
  const status = await requestStatus(stateDir);
  assert.equal(status.watchdog.nice, -10);
  const first = status.supervisor.processes[0]!.pid!;
  assert.equal(niceOf(first), base);
  process.kill(first, 'SIGKILL');
  const entries = await waitForJournal(journal, (es) => es.some((e) => e.event === 'resolved'), 10_000, 'restart');
  const restarted = entries.filter((e) => e.event === 'ready').at(-1)!.pid!;
  assert.deepEqual(entries.filter((e) => e.event === 'start').at(-1)!.detail, { spare: true });
  assert.equal(niceOf(restarted), base);
});

test('an output log that cannot be opened fails that start (journaled); the watchdog itself keeps running', async (t) => {
  const dir = watchdogDir(t);
  const config = writeConfig(
    dir,
    `
journal: ./var/watchdog.jsonl
logDir: ./logs
checkIntervalMs: 50
ladder: [restart-failed]
onExhausted: retry
stableMs: 100
backoff: { initialMs: 100, maxMs: 200 }
processes:
  - { name: a, command: ${serviceCommand('a')}, ready: { stdout: "^ready a" } }
`,
  );
  const stateDir = join(dir, 'var');
  const journal = join(stateDir, 'watchdog.jsonl');
  const logDir = join(dir, 'logs');
  const w = await startWatchdog(t, config, stateDir, journal);
  await waitUntil(() => sparesIn(dir).length === 1, 5000, 'a spare');
  // The log folder becomes unusable (here: a regular file takes its place).
  rmSync(logDir, { recursive: true });
  writeFileSync(logDir, '');
  const first = (await requestStatus(stateDir)).supervisor.processes[0]!.pid!;
  const from = (await waitForJournal(journal, () => true)).length;
  process.kill(first, 'SIGKILL');
  // The spare's exec cannot be seen ready (its log cannot be read); a direct spawn cannot open
  // a log at all. Either way the start fails with the reason, and the watchdog goes on.
  const failed = await waitForJournal(journal, (es) => es.slice(from).filter((e) => e.event === 'fail').length >= 2, 15_000, 'starts that fail');
  for (const f of failed.slice(from).filter((e) => e.event === 'fail')) assert.match(f.cause!, /^cannot open the output log .*\/logs\/a\.log: E[A-Z]+/);
  assert.equal(w.proc.child.exitCode, null, 'the watchdog is still running');
  assert.equal((await requestStatus(stateDir)).supervisor.incident?.retrying, true);
  // Once the folder is back, the retries get the process up again.
  rmSync(logDir);
  await waitForJournal(journal, (es) => es.slice(from).some((e) => e.event === 'resolved'), 15_000, 'up again');
  assert.equal((await requestStatus(stateDir)).supervisor.processes[0]!.state, 'running');
});
