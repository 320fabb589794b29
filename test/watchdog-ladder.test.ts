/**
 * Every rung of the ladder with real processes, and the exact stop (reverse) and start
 * (forward) order each one journals; then a crash loop climbing the whole ladder to notify.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requestStatus } from '../src/watchdog/watchdog.js';
import type { JournalEntry } from '../src/watchdog/journal.js';
import { alive, freePort, serviceCommand, startWatchdog, steps, waitForJournal, watchdogDir, writeConfig } from './helpers/watchdog.js';

const names = ['a', 'b', 'c', 'd'];

async function fourProcessConfig(dir: string, head: string, extra: (name: string) => string[] = () => []): Promise<string> {
  const lines = [head, 'processes:'];
  for (const name of names) {
    const port = await freePort();
    lines.push(`  - name: ${name}`);
    lines.push(`    command: ${serviceCommand(name, '--port', String(port), ...extra(name))}`);
    lines.push(`    ready: { tcp: "127.0.0.1:${port}" }`);
    lines.push('    stop: { signal: SIGTERM, timeoutMs: 2000 }');
  }
  return writeConfig(dir, lines.join('\n') + '\n');
}

/** Kills `name` and returns the entries of the incident that follows, once it is resolved. */
async function killAndFollow(journal: string, stateDir: string, name: string): Promise<JournalEntry[]> {
  const pid = (await requestStatus(stateDir)).supervisor.processes.find((p) => p.name === name)!.pid!;
  const from = (await waitForJournal(journal, () => true)).length;
  process.kill(pid, 'SIGKILL');
  const entries = await waitForJournal(journal, (es) => es.slice(from).some((e) => e.event === 'resolved'), 20_000, `${name} remedied`);
  const incident = entries.slice(from).find((e) => e.incident !== null)!.incident;
  return entries.filter((e) => e.incident === incident);
}

for (const [rung, failed, expected] of [
  ['restart-failed', 'c', ['exit:c', 'start:c', 'ready:c']],
  ['partial-restart', 'b', ['exit:b', 'stop:d', 'stop:c', 'stop:b', 'start:b', 'ready:b', 'start:c', 'ready:c', 'start:d', 'ready:d']],
  ['full-restart', 'c', ['exit:c', 'stop:d', 'stop:c', 'stop:b', 'stop:a', 'start:a', 'ready:a', 'start:b', 'ready:b', 'start:c', 'ready:c', 'start:d', 'ready:d']],
] as const) {
  test(`${rung}: killing ${failed} journals exactly ${expected.slice(1).join(' ')}`, async (t) => {
    const dir = watchdogDir(t);
    const config = await fourProcessConfig(dir, `journal: ./var/watchdog.jsonl\ncheckIntervalMs: 50\nladder: [${rung}]\nstableMs: 200`);
    const journal = join(dir, 'var', 'watchdog.jsonl');
    const stateDir = join(dir, 'var');
    await startWatchdog(t, config, stateDir, journal);
    const before = (await requestStatus(stateDir)).supervisor.processes;
    const incident = await killAndFollow(journal, stateDir, failed);
    assert.deepEqual(steps(incident), expected);
    const restart = incident.find((e) => e.event === 'restart')!;
    assert.equal(restart.rung, rung);
    // Everything in the incident is tagged with the rung that did it.
    for (const e of incident.filter((x) => ['stop', 'start', 'ready'].includes(x.event))) assert.equal(e.rung, rung);
    // Stopped processes were really stopped (SIGTERM, no SIGKILL needed) and untouched ones kept their pid.
    assert.equal(incident.filter((e) => e.event === 'kill').length, 0);
    const after = (await requestStatus(stateDir)).supervisor.processes;
    for (const name of names) {
      const was = before.find((p) => p.name === name)!;
      const now = after.find((p) => p.name === name)!;
      const touched = expected.includes(`start:${name}` as never);
      assert.equal(now.state, 'running');
      if (touched) {
        assert.notEqual(now.pid, was.pid, `${name} restarted`);
        assert.ok(!alive(was.pid!), `old ${name} gone`);
      } else {
        assert.equal(now.pid, was.pid, `${name} untouched`);
      }
    }
    // A stop of a running process names its pid and signal; the failed one was already gone.
    const stops = incident.filter((e) => e.event === 'stop');
    for (const s of stops) {
      if (s.process === failed) assert.match(s.cause!, /already exited/);
      else assert.equal(s.signal, 'SIGTERM');
    }
  });
}

test('a crash loop climbs restart-failed → partial-restart → full-restart → notify, alerts once, then holds', async (t) => {
  const dir = watchdogDir(t);
  const crashFile = join(dir, 'crash-b');
  const posts: unknown[] = [];
  const hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      posts.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  t.after(() => hook.close());
  const hookPort = (hook.address() as { port: number }).port;
  const config = await fourProcessConfig(
    dir,
    [
      'name: climb',
      'journal: ./var/watchdog.jsonl',
      'checkIntervalMs: 50',
      'ladder: [restart-failed, partial-restart, full-restart, notify]',
      'stableMs: 10000',
      'backoff: { initialMs: 20, maxMs: 100 }',
      `notify: { webhook: { url: "http://127.0.0.1:${hookPort}/alert" } }`,
    ].join('\n'),
    // b, once crashFile exists, exits with code 3 3 s after each start: long enough for any
    // remedy to finish first (even on a slow machine), well inside stableMs, so each rung
    // "does not hold".
    (name) => (name === 'b' ? ['--crash-if-file', crashFile, '--crash-delay-ms', '3000'] : []),
  );
  const journal = join(dir, 'var', 'watchdog.jsonl');
  const stateDir = join(dir, 'var');
  await startWatchdog(t, config, stateDir, journal);
  writeFileSync(crashFile, '');
  const bPid = (await requestStatus(stateDir)).supervisor.processes.find((p) => p.name === 'b')!.pid!;
  const from = (await waitForJournal(journal, () => true)).length;
  process.kill(bPid, 'SIGKILL');
  const entries = (await waitForJournal(journal, (es) => es.slice(from).some((e) => e.event === 'hold'), 60_000, 'hold')).slice(from);
  await waitForJournal(journal, (es) => es.some((e) => e.event === 'notify'), 5000, 'notify journaled');
  const incident = entries[0]!.incident!;
  assert.ok(entries.every((e) => e.incident === incident), 'one incident throughout');
  const ladderSteps = steps(entries, ['exit', 'restart', 'escalate', 'stop', 'start', 'ready', 'hold']).map((s, i) => {
    const e = entries.filter((x) => ['exit', 'restart', 'escalate', 'stop', 'start', 'ready', 'hold'].includes(x.event))[i]!;
    return e.event === 'restart' || e.event === 'escalate' ? `${e.event}:${e.rung}` : s;
  });
  assert.deepEqual(ladderSteps, [
    'exit:b',
    'restart:restart-failed',
    'start:b', 'ready:b',
    'exit:b',
    'escalate:partial-restart',
    'restart:partial-restart',
    'stop:d', 'stop:c', 'stop:b',
    'start:b', 'ready:b', 'start:c', 'ready:c', 'start:d', 'ready:d',
    'exit:b',
    'escalate:full-restart',
    'restart:full-restart',
    'stop:d', 'stop:c', 'stop:b', 'stop:a',
    'start:a', 'ready:a', 'start:b', 'ready:b', 'start:c', 'ready:c', 'start:d', 'ready:d',
    'exit:b',
    'escalate:notify',
    'hold:b',
  ]);
  assert.equal(entries.filter((e) => e.event === 'exit' && e.process === 'b').slice(1).every((e) => e.cause === 'exited with code 3'), true);
  // Exactly one alert, after the hold too.
  await new Promise((r) => setTimeout(r, 2000));
  assert.equal(posts.length, 1);
  const alert = posts[0] as { type: string; incident: string; application: string; then: string; reason: string; attempts: { rung: string }[]; failures: { process: string; cause: string }[] };
  assert.equal(alert.type, 'mirrorbox.watchdog.alert');
  assert.equal(alert.incident, incident);
  assert.equal(alert.application, 'climb');
  assert.equal(alert.then, 'hold');
  assert.match(alert.reason, /every rung was tried \(3 attempts\)/);
  assert.deepEqual(alert.attempts.map((a) => a.rung), ['restart-failed', 'partial-restart', 'full-restart']);
  assert.deepEqual(alert.failures.map((f) => f.cause), ['killed by SIGKILL', 'exited with code 3', 'exited with code 3', 'exited with code 3']);
  const s = (await requestStatus(stateDir)).supervisor;
  assert.equal(s.processes.find((p) => p.name === 'b')!.state, 'held');
  for (const n of ['a', 'c', 'd']) assert.equal(s.processes.find((p) => p.name === n)!.state, 'running');
  assert.equal(s.incident?.held, true);
  assert.deepEqual(s.rungCounters, { 'restart-failed': 1, 'partial-restart': 1, 'full-restart': 1 });
});
