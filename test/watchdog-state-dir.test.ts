/**
 * `--state-dir DIR` without `-c`: the commands work from what the state folder records and do not
 * pick up a watchdog.yaml from the current folder (which may belong to another application, or
 * be broken). Each command runs as a user runs it, from a folder holding such a file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { JournalWriter, readJournal } from '../src/watchdog/journal.js';
import { journalFilesKeptDefault } from '../src/watchdog/limits.js';
import { cliPath } from './helpers/paths.js';
import { run } from './helpers/process.js';
import { alive, readEntries, serviceCommand, startWatchdog, watchdogApp, writeConfig } from './helpers/watchdog.js';

const cliIn = (cwd: string, ...args: string[]): ReturnType<typeof run> => run(process.execPath, [cliPath, ...args], { cwd });

test('--state-dir without -c ignores ./watchdog.yaml: status, journal (with its rotation) and stop use what the state folder records', async (t) => {
  const keep = 6;
  const bytesMax = 4096;
  const app = watchdogApp(
    t,
    `journalRotate: { maxBytes: ${bytesMax}, keep: ${keep} }
ladder: [restart-failed]
processes:
  - name: one
    command: ${serviceCommand('one')}
    ready: { stdout: "^ready one" }
    stop: { signal: SIGINT, timeoutMs: 3000 }
`,
  );
  // History from earlier runs, rotated past the default keep (the same writer and rotation).
  const history = await JournalWriter.open(app.journal, { bytesMax, filesKept: keep });
  for (let i = 0; i < 100; i += 1) {
    history.append({ event: 'exit', process: 'one', pid: 1000 + i, cause: `exited with code ${i} ${'.'.repeat(20)}` });
    if (i % 5 === 0) await history.flush();
  }
  await history.close();

  // A folder whose ./watchdog.yaml is broken, and one whose ./watchdog.yaml is another application's.
  const broken = join(app.dir, 'broken');
  mkdirSync(broken);
  writeConfig(broken, 'journal: [\n');
  const other = join(app.dir, 'other');
  mkdirSync(other);
  writeConfig(other, `journal: ./other.jsonl\nladder: [restart-failed]\nprocesses:\n  - { name: one, command: [sleep, "1"], stop: { signal: SIGQUIT } }\n`);
  const otherJournal = join(other, 'other.jsonl');
  const decoy = await JournalWriter.open(otherJournal);
  decoy.append({ event: 'watchdog', cause: 'the other application' });
  await decoy.close();

  const w = await startWatchdog(t, app.config, app.stateDir, app.journal);

  const status = await cliIn(broken, 'watchdog', 'status', '--state-dir', app.stateDir, '--json');
  assert.equal(status.code, 0, status.stderr);
  const doc = JSON.parse(status.stdout) as { running: boolean; watchdog: { config: string }; supervisor: { processes: { pid: number }[] } };
  assert.equal(doc.running, true);
  assert.equal(doc.watchdog.config, app.config);
  const pid = doc.supervisor.processes[0]!.pid;

  const journal = await cliIn(other, 'watchdog', 'journal', '--state-dir', app.stateDir, '--json');
  assert.equal(journal.code, 0, journal.stderr);
  const seqs = (JSON.parse(journal.stdout) as { seq: number }[]).map((e) => e.seq);
  assert.deepEqual(seqs, readJournal(app.journal, {}, keep).entries.map((e) => e.seq), "this application's journal, every file its rotation keeps");
  assert.ok(seqs.length > readJournal(app.journal, {}, journalFilesKeptDefault).entries.length, 'more files than the default keep');

  // No watchdog answers: the recorded processes are stopped with their recorded stop signal,
  // and journaled in the journal the state file names.
  w.proc.child.kill('SIGKILL');
  await w.proc.exited;
  const before = readFileSync(otherJournal, 'utf8');
  const stop = await cliIn(other, 'watchdog', 'stop', '--state-dir', app.stateDir);
  assert.equal(stop.code, 0, stop.stderr);
  assert.deepEqual(stop.stdout.split('\n').filter((l) => l.startsWith('stopping')), [`stopping one (pid ${pid})`]);
  assert.ok(!alive(pid));
  const stopEntry = readEntries(app.journal).find((e) => e.event === 'stop' && e.pid === pid);
  assert.ok(stopEntry, 'the stop is in the application journal');
  assert.equal(stopEntry.signal, 'SIGINT');
  assert.equal(stopEntry.cause, 'watchdog stop (no watchdog running)');
  assert.equal(readFileSync(otherJournal, 'utf8'), before, "the other application's journal is untouched");

  // A broken ./watchdog.yaml does not break --state-dir commands either.
  const down = await cliIn(broken, 'watchdog', 'status', '--state-dir', app.stateDir);
  assert.equal(down.code, 3, down.stderr);
  assert.match(down.stderr, /watchdog not running/);
});
