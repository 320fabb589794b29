/**
 * A process that is running but hung (its event loop spins: the port still accepts TCP, but no
 * request is ever answered) is caught by its liveness probe; it cannot act on SIGTERM either,
 * so the stop escalates to SIGKILL. And process trees: a stop reaches the whole process group.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requestStatus } from '../src/watchdog/watchdog.js';
import { alive, freePort, serviceCommand, startWatchdog, steps, waitForJournal, waitUntil, watchdogDir, writeConfig } from './helpers/watchdog.js';
import { run } from './helpers/process.js';
import { cliPath } from './helpers/paths.js';

test('a hung process is caught by its http liveness probe, killed after its stop timeout, and restarted', async (t) => {
  const dir = watchdogDir(t);
  const port = await freePort();
  const config = writeConfig(
    dir,
    `
journal: ./var/watchdog.jsonl
checkIntervalMs: 100
ladder: [restart-failed]
stableMs: 200
processes:
  - name: web
    command: ${serviceCommand('web', '--port', String(port), '--hang-on-usr2')}
    ready: { http: "http://127.0.0.1:${port}/" }
    live: { http: "http://127.0.0.1:${port}/", everyMs: 100, failures: 3, timeoutMs: 200 }
    stop: { signal: SIGTERM, timeoutMs: 300 }
`,
  );
  const journal = join(dir, 'var', 'watchdog.jsonl');
  const stateDir = join(dir, 'var');
  await startWatchdog(t, config, stateDir, journal);
  const pid = (await requestStatus(stateDir)).supervisor.processes[0]!.pid!;
  const from = (await waitForJournal(journal, () => true)).length;
  const hungAtMs = Date.now();
  process.kill(pid, 'SIGUSR2');
  const entries = (await waitForJournal(journal, (es) => es.slice(from).some((e) => e.event === 'resolved'), 15_000, 'hang remedied')).slice(from);
  assert.deepEqual(steps(entries, ['fail', 'restart', 'stop', 'kill', 'start', 'ready', 'resolved']), [
    'fail:web',
    'restart:-',
    'stop:web',
    'kill:web',
    'start:web',
    'ready:web',
    'resolved:-',
  ]);
  const fail = entries[0]!;
  assert.match(fail.cause!, /^liveness probe failed 3 times in a row: http http:\/\/127\.0\.0\.1:\d+\/: no answer within 200 ms$/);
  assert.equal(fail.pid, pid);
  // 3 probes × 100 ms apart, each waiting up to 200 ms: caught within about a second.
  assert.ok(fail.timeUs / 1000 - hungAtMs < 2000, `caught after ${fail.timeUs / 1000 - hungAtMs} ms`);
  const kill = entries.find((e) => e.event === 'kill')!;
  assert.equal(kill.cause, 'did not stop within 300 ms of SIGTERM');
  assert.equal(kill.signal, 'SIGKILL');
  assert.ok(!alive(pid));
  const s = (await requestStatus(stateDir)).supervisor.processes[0]!;
  assert.equal(s.state, 'running');
  assert.notEqual(s.pid, pid);
});

test('whole process trees: a child that ignores SIGTERM is killed with its group, on a restart and on stop', async (t) => {
  const dir = watchdogDir(t);
  const grandchildFile = join(dir, 'grandchild.pid');
  const config = writeConfig(
    dir,
    `
journal: ./var/watchdog.jsonl
checkIntervalMs: 100
ladder: [restart-failed]
stableMs: 200
processes:
  - name: tree
    command: ${serviceCommand('tree', '--grandchild', grandchildFile)}
    ready: { stdout: "^ready tree" }
    stop: { signal: SIGTERM, timeoutMs: 300 }
`,
  );
  const journal = join(dir, 'var', 'watchdog.jsonl');
  const stateDir = join(dir, 'var');
  await startWatchdog(t, config, stateDir, journal);
  const leader = (await requestStatus(stateDir)).supervisor.processes[0]!.pid!;
  await waitUntil(() => readFileSync(grandchildFile, 'utf8') !== '', 5000, 'grandchild pid');
  const grandchild = Number(readFileSync(grandchildFile, 'utf8'));
  assert.ok(alive(grandchild));

  // The leader dies; its child (which ignores SIGTERM) must not outlive it into the restart.
  const from = (await waitForJournal(journal, () => true)).length;
  process.kill(leader, 'SIGKILL');
  const entries = (await waitForJournal(journal, (es) => es.slice(from).some((e) => e.event === 'resolved'), 15_000, 'restart')).slice(from);
  assert.deepEqual(steps(entries, ['exit', 'stop', 'kill', 'start', 'ready']), ['exit:tree', 'stop:tree', 'kill:tree', 'start:tree', 'ready:tree']);
  assert.equal(entries.find((e) => e.event === 'stop')!.cause, 'processes left in its group');
  assert.ok(!alive(grandchild), 'the orphaned grandchild was killed with the group');

  // `watchdog stop`: the new leader ignores nothing, its new grandchild ignores SIGTERM.
  await waitUntil(() => Number(readFileSync(grandchildFile, 'utf8')) !== grandchild, 5000, 'new grandchild');
  const grandchild2 = Number(readFileSync(grandchildFile, 'utf8'));
  const leader2 = (await requestStatus(stateDir)).supervisor.processes[0]!.pid!;
  const r = await run(process.execPath, [cliPath, 'watchdog', 'stop', '-c', config]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!alive(leader2) && !alive(grandchild2), 'the whole tree is stopped');
  const tail = readFileSync(journal, 'utf8').trimEnd().split('\n').slice(-3).map((l) => JSON.parse(l) as { event: string; cause: string });
  assert.deepEqual(tail.map((e) => e.event), ['stop', 'kill', 'watchdog']);
});
