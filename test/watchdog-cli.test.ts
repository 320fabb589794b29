/**
 * The commands as a user runs them: status (table and --json), journal (filters, --json),
 * stop (progress in reverse order; also with no watchdog running), and --help with examples.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { journalEvents } from '../src/watchdog/journal.js';
import { readStateFile, statePaths } from '../src/watchdog/state.js';
import { requestStatus } from '../src/watchdog/watchdog.js';
import { cliPath } from './helpers/paths.js';
import { run, spawnCollected } from './helpers/process.js';
import { alive, freePort, serviceCommand, sparesIn, startWatchdog, waitForJournal, waitUntil, watchdogDir, writeConfig } from './helpers/watchdog.js';

const cli = (...args: string[]): ReturnType<typeof run> => run(process.execPath, [cliPath, ...args]);

test('status, journal and stop from the command line', async (t) => {
  const dir = watchdogDir(t);
  const [p1, p2] = [await freePort(), await freePort()];
  const config = writeConfig(
    dir,
    `
name: cli
journal: ./var/watchdog.jsonl
checkIntervalMs: 50
ladder: [restart-failed]
stableMs: 100
processes:
  - name: store
    command: ${serviceCommand('store', '--port', String(p1))}
    ready: { tcp: "127.0.0.1:${p1}" }
  - name: mirror
    command: ${serviceCommand('mirror', '--port', String(p2))}
    ready: { http: "http://127.0.0.1:${p2}/" }
`,
  );
  const stateDir = join(dir, 'var');
  const journal = join(stateDir, 'watchdog.jsonl');
  await startWatchdog(t, config, stateDir, journal);
  await waitUntil(() => sparesIn(dir).length === 2, 5000, 'a spare per process');

  const json = await cli('watchdog', 'status', '-c', config, '--json');
  assert.equal(json.code, 0, json.stderr);
  const doc = JSON.parse(json.stdout) as { running: boolean; supervisor: { processes: { name: string; pid: number; state: string; restarts: number; uptimeMs: number }[] } };
  assert.equal(doc.running, true);
  assert.deepEqual(doc.supervisor.processes.map((p) => [p.name, p.state, p.restarts]), [['store', 'running', 0], ['mirror', 'running', 0]]);
  const mirrorPid = doc.supervisor.processes[1]!.pid;

  process.kill(mirrorPid, 'SIGKILL');
  await waitForJournal(journal, (es) => es.some((e) => e.event === 'resolved'), 10_000, 'restart');

  const table = await cli('watchdog', 'status', '-c', config);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  const header = lines.findIndex((l) => l.startsWith('NAME'));
  assert.match(lines[header]!, /^NAME +PID +STATE +UPTIME +RESTARTS +LAST CAUSE$/);
  assert.match(lines[header + 1]!, /^store +\d+ +running +\d+(ms|s) +0 +-$/);
  assert.match(lines[header + 2]!, /^mirror +\d+ +running +\d+(ms|s) +1 +killed by SIGKILL$/);
  assert.match(table.stdout, /^watchdog pid \d+, up \d+(ms|s)/);

  const all = await cli('watchdog', 'journal', '-c', config, '--json');
  assert.equal(all.code, 0, all.stderr);
  const entries = JSON.parse(all.stdout) as { event: string; process: string | null; seq: number }[];
  assert.deepEqual(entries.map((e) => e.seq), entries.map((_, i) => i));
  const mirrorOnly = JSON.parse((await cli('watchdog', 'journal', '-c', config, '--json', '--process', 'mirror')).stdout) as { event: string; process: string }[];
  assert.deepEqual(mirrorOnly.map((e) => e.event), ['start', 'ready', 'exit', 'start', 'ready']);
  assert.ok(mirrorOnly.every((e) => e.process === 'mirror'));
  const none = JSON.parse((await cli('watchdog', 'journal', '-c', config, '--json', '--since', '2099-01-01T00:00:00Z')).stdout) as unknown[];
  assert.deepEqual(none, []);
  const recent = JSON.parse((await cli('watchdog', 'journal', '-c', config, '--json', '--since', '1h')).stdout) as unknown[];
  assert.equal(recent.length, entries.length);
  const text = await cli('watchdog', 'journal', '-c', config, '--process', 'mirror');
  assert.match(text.stdout.split('\n')[0]!, /^TIME +EVENT +PROCESS +PID +RUNG +INCIDENT +CAUSE$/);
  assert.match(text.stdout, /exit +mirror +\d+ +- +\S+ +killed by SIGKILL/);
  const bad = await cli('watchdog', 'journal', '-c', config, '--since', 'yesterday-ish');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^mirrorbox: --since "yesterday-ish": expected an ISO 8601 date or time.* \(BAD_SINCE\)\n$/);

  const stop = await cli('watchdog', 'stop', '-c', config);
  assert.equal(stop.code, 0, stop.stderr);
  assert.deepEqual(
    stop.stdout.trimEnd().split('\n').map((l) => l.replace(/\d+/g, 'N')),
    ['stopping mirror (pid N)', 'stopped mirror in N ms', 'stopping store (pid N)', 'stopped store in N ms', 'stopped mirror, store; watchdog stopped'],
  );
  assert.deepEqual(sparesIn(dir), [], 'no spare shell outlives the stop');
  const down = await cli('watchdog', 'status', '-c', config);
  assert.equal(down.code, 3, 'status exits 3 when no watchdog runs');
  assert.match(down.stderr, /watchdog not running \(state folder .*; last watchdog pid \d+, stopped\)/);
  assert.doesNotMatch(down.stderr, /EEXIT/, 'the reason is said once, with no oclif exit noise');
  const downJson = JSON.parse((await cli('watchdog', 'status', '-c', config, '--json')).stdout) as { running: boolean; processes: { alive: boolean }[] };
  assert.equal(downJson.running, false);
  assert.ok(downJson.processes.every((p) => !p.alive));
});

test('stop with no watchdog answering stops what its state file recorded, in reverse order', async (t) => {
  const dir = watchdogDir(t);
  const config = writeConfig(
    dir,
    `
journal: ./var/watchdog.jsonl
ladder: [restart-failed]
processes:
  - { name: one, command: ${serviceCommand('one')}, ready: { stdout: "^ready one" } }
  - { name: two, command: ${serviceCommand('two')}, ready: { stdout: "^ready two" } }
`,
  );
  const stateDir = join(dir, 'var');
  const w = await startWatchdog(t, config, stateDir, join(stateDir, 'watchdog.jsonl'));
  const pids = (JSON.parse((await cli('watchdog', 'status', '-c', config, '--json')).stdout) as { supervisor: { processes: { pid: number }[] } }).supervisor.processes.map((p) => p.pid);
  w.proc.child.kill('SIGKILL');
  await w.proc.exited;
  const status = await cli('watchdog', 'status', '-c', config);
  assert.equal(status.code, 3);
  assert.match(status.stdout, /one +\d+ +running +yes \(unsupervised\)/);
  const stop = await cli('watchdog', 'stop', '-c', config);
  assert.equal(stop.code, 0, stop.stderr);
  assert.match(stop.stderr, /no watchdog answers; stopping the processes its state file recorded/);
  assert.deepEqual(stop.stdout.split('\n').filter((l) => l.startsWith('stopping')).map((l) => l.split(' ')[1]), ['two', 'one']);
  assert.ok(pids.every((pid) => !alive(pid)));
});

test('every watchdog command has --help with examples', async () => {
  for (const command of ['run', 'status', 'journal', 'restart', 'stop']) {
    const r = await cli('watchdog', command, '--help');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /EXAMPLES/, command);
    assert.match(r.stdout, new RegExp(`mirrorbox watchdog ${command}`), command);
    if (command === 'journal') assert.ok(r.stdout.replace(/\s+/g, ' ').includes(`Events: ${journalEvents.join(', ')}.`), 'journal --help names every event');
  }
});

test('stop with no watchdog answering also stops an instance its state file missed', async (t) => {
  const dir = watchdogDir(t);
  const config = writeConfig(
    dir,
    `
journal: ./var/watchdog.jsonl
checkIntervalMs: 50
ladder: [restart-failed]
processes:
  - { name: one, command: ${serviceCommand('one')}, ready: { stdout: "^ready one" } }
`,
  );
  const stateDir = join(dir, 'var');
  const journal = join(stateDir, 'watchdog.jsonl');
  const statePath = statePaths(stateDir).state;
  const w = await startWatchdog(t, config, stateDir, journal);
  await waitUntil(() => readStateFile(statePath)!.processes[0]!.state === 'running', 5000, 'state file written');
  const before = readFileSync(statePath, 'utf8');
  const oldPid = readStateFile(statePath)!.processes[0]!.pid!;
  // Restarted; then the watchdog dies before the state file records the new instance.
  process.kill(oldPid, 'SIGKILL');
  const entries = await waitForJournal(journal, (es) => es.some((e) => e.event === 'ready' && e.pid !== oldPid), 10_000, 'restarted');
  const newPid = entries.filter((e) => e.event === 'ready').at(-1)!.pid!;
  w.proc.child.kill('SIGKILL');
  await w.proc.exited;
  writeFileSync(statePath, before);

  const stop = await cli('watchdog', 'stop', '-c', config);
  assert.equal(stop.code, 0, stop.stderr);
  assert.deepEqual(stop.stdout.split('\n').filter((l) => l.startsWith('stopping')), [`stopping one (pid ${newPid})`]);
  assert.ok(!alive(newPid));
});

test('watchdog run outlives its terminal: after a hangup (SIGHUP ignored, writes fail with EIO) it keeps supervising', async (t) => {
  const dir = watchdogDir(t);
  const config = writeConfig(
    dir,
    `
journal: ./var/watchdog.jsonl
checkIntervalMs: 50
ladder: [restart-failed]
stableMs: 100
processes:
  - { name: one, command: ${serviceCommand('one')}, ready: { stdout: "^ready one" } }
`,
  );
  const stateDir = join(dir, 'var');
  const journal = join(stateDir, 'watchdog.jsonl');
  // A real pseudo-terminal: `script` (util-linux) runs the watchdog on one; killing `script`
  // closes the terminal, as when the SSH session that started the watchdog ends.
  const quote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
  const term = spawnCollected(t, 'script', ['-qfc', [process.execPath, cliPath, 'watchdog', 'run', config].map(quote).join(' '), '/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, MIRRORBOX_LOG_LEVEL: 'warn' },
  });
  await term.waitForLine(/watchdog running/, 30_000);
  const watchdogPid = (await requestStatus(stateDir)).watchdog.pid;
  term.child.kill('SIGKILL');
  await term.exited;
  for (let round = 0; round < 2; round += 1) {
    const pid = (await requestStatus(stateDir)).supervisor.processes[0]!.pid!;
    const from = (await waitForJournal(journal, () => true)).length;
    process.kill(pid, 'SIGKILL');
    await waitForJournal(journal, (es) => es.slice(from).some((e) => e.event === 'resolved'), 10_000, `restart ${round + 1}`);
  }
  assert.ok(alive(watchdogPid), 'the watchdog is still running');
  assert.equal((await requestStatus(stateDir)).supervisor.processes[0]!.restarts, 2);
});
