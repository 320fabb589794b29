import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import fc from 'fast-check';
import { JournalWriter, encodeJournalLine, journalEvents, parseJournalLine, readJournal, type JournalEntry } from '../src/watchdog/journal.js';
import { MirrorboxError } from '../src/util/errors.js';
import { journalRetryMs } from '../src/watchdog/limits.js';
import { cliPath, repoRoot } from './helpers/paths.js';
import { run } from './helpers/process.js';
import { tempDir } from './helpers/tmp.js';
import { requestStatus } from '../src/watchdog/watchdog.js';
import { serviceCommand, startWatchdog, waitUntil, watchdogDir, writeConfig } from './helpers/watchdog.js';

const corpusDir = join(repoRoot, 'test', 'corpus', 'watchdog-journal');

test('appended entries are on disk after flush, in order, with every field', async (t) => {
  const path = join(tempDir(t), 'var', 'watchdog.jsonl');
  const j = await JournalWriter.open(path);
  const before = Date.now();
  j.append({ event: 'start', process: 'store', pid: 10, cause: 'start' });
  j.append({ event: 'exit', process: 'store', pid: 10, cause: 'killed by SIGKILL', incident: 'i1', signal: 'SIGKILL' });
  j.append({ event: 'restart', rung: 'restart-failed', incident: 'i1', detail: { processes: ['store'] } });
  await j.flush();
  // Read through another descriptor: what a crash right now would leave.
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 3);
  const entries = lines.map(parseJournalLine);
  assert.deepEqual(entries.map((e) => e.seq), [0, 1, 2]);
  assert.deepEqual(entries.map((e) => e.event), ['start', 'exit', 'restart']);
  assert.equal(entries[1]!.signal, 'SIGKILL');
  assert.equal(entries[1]!.incident, 'i1');
  assert.equal(entries[2]!.rung, 'restart-failed');
  assert.equal(entries[2]!.process, null);
  assert.deepEqual(entries[2]!.detail, { processes: ['store'] });
  for (const e of entries) {
    assert.equal(e.watchdogPid, process.pid);
    assert.ok(e.timeUs >= before * 1000 && e.timeUs <= (Date.now() + 1) * 1000);
    assert.equal(e.time, new Date(Math.floor(e.timeUs / 1000)).toISOString());
  }
  await j.close();
});

test('a reopened journal continues the sequence; a torn last line is cut off', async (t) => {
  const path = join(tempDir(t), 'watchdog.jsonl');
  const j1 = await JournalWriter.open(path);
  for (let i = 0; i < 5; i += 1) j1.append({ event: 'start', process: `p${i}`, pid: 100 + i });
  await j1.close();
  appendFileSync(path, '{"v":1,"seq":5,"time":"2024-'); // a crash in the middle of a write
  const j2 = await JournalWriter.open(path);
  j2.append({ event: 'watchdog', cause: 'started again' });
  await j2.close();
  const read = readJournal(path);
  assert.equal(read.skippedLines, 0);
  assert.deepEqual(read.entries.map((e) => e.seq), [0, 1, 2, 3, 4, 5]);
  assert.equal(read.entries[5]!.cause, 'started again');
});

test('rotation by size keeps the newest files, each under the limit, and reading spans them in order', async (t) => {
  const path = join(tempDir(t), 'watchdog.jsonl');
  const bytesMax = 4096;
  const j = await JournalWriter.open(path, { bytesMax, filesKept: 2 });
  const total = 200;
  for (let i = 0; i < total; i += 1) {
    j.append({ event: 'exit', process: 'store', pid: 1000 + i, cause: `exited with code ${i}` });
    if (i % 7 === 0) await j.flush(); // batches of different sizes
  }
  await j.close();
  assert.ok(existsSync(`${path}.1`) && existsSync(`${path}.2`));
  assert.ok(!existsSync(`${path}.3`), 'only two old files kept');
  for (const f of [path, `${path}.1`, `${path}.2`]) assert.ok(statSync(f).size <= bytesMax, `${f} over the limit`);
  const read = readJournal(path, {}, 2);
  const seqs = read.entries.map((e) => e.seq);
  assert.equal(seqs[seqs.length - 1], total - 1);
  seqs.forEach((s, i) => i > 0 && assert.equal(s, seqs[i - 1]! + 1, 'contiguous across rotated files'));
  // The sequence survives reopening after a rotation, even with an empty live file.
  const j2 = await JournalWriter.open(path, { bytesMax, filesKept: 2 });
  j2.append({ event: 'watchdog' });
  await j2.close();
  const last = readJournal(path, {}, 2).entries.at(-1)!;
  assert.equal(last.seq, total);
});

test('`watchdog journal` reads every file journalRotate.keep keeps (keep: 10), not only the default 4', async (t) => {
  const dir = tempDir(t);
  const keep = 10;
  const bytesMax = 4096;
  const config = writeConfig(dir, `journal: ./var/watchdog.jsonl\njournalRotate: { maxBytes: ${bytesMax}, keep: ${keep} }\nladder: [restart-failed]\nprocesses:\n  - { name: one, command: [sleep, "1"] }\n`);
  const path = join(dir, 'var', 'watchdog.jsonl');
  // The watchdog's own writer, with the config's rotation: fills .1 … .7 and the live file.
  const j = await JournalWriter.open(path, { bytesMax, filesKept: keep });
  const total = 120;
  for (let i = 0; i < total; i += 1) {
    j.append({ event: 'exit', process: 'one', pid: 1000 + i, cause: `exited with code ${i} ${'.'.repeat(20)}` });
    if (i % 5 === 0) await j.flush(); // small batches: rotation happens between them
  }
  await j.close();
  assert.ok(existsSync(`${path}.6`), 'rotated past the default keep');
  assert.ok(!existsSync(`${path}.${keep}`), 'nothing dropped yet');
  const r = await run(process.execPath, [cliPath, 'watchdog', 'journal', '-c', config, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const seqs = (JSON.parse(r.stdout) as { seq: number }[]).map((e) => e.seq);
  assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i), 'every entry, oldest first');
  // --file: a journal whose rotation is unknown; every rotated file present is read.
  const f = await run(process.execPath, [cliPath, 'watchdog', 'journal', '--file', path, '--json']);
  assert.equal(f.code, 0, f.stderr);
  assert.equal((JSON.parse(f.stdout) as unknown[]).length, total);
});

test('crash loop: a writer SIGKILLed at random moments never loses an acknowledged entry nor leaves a bad line', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'watchdog.jsonl');
  const writer = join(repoRoot, 'dist', 'test', 'fixtures', 'journal-writer.js');
  const bytesMax = 64 * 1024; // small, so rotations happen during the loop too
  let acknowledged = -1;
  for (let round = 0; round < 12; round += 1) {
    const child = spawn(process.execPath, [writer, path, String(bytesMax)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    // Even rounds: a random moment once the writer has acknowledged a batch (so every round
    // gets work done however slowly Node starts here). Odd rounds: a random moment after the
    // spawn, which may fall in the open and its torn-tail repair.
    if (round % 2 === 0) await waitUntil(() => /^\d+$/m.test(out), 20_000, `round ${round}: the writer's first batch`);
    await new Promise((r) => setTimeout(r, (round % 2 === 0 ? 0 : 150) + Math.floor(Math.random() * 150)));
    child.kill('SIGKILL');
    await exited;
    const acks = out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number);
    if (acks.length > 0) acknowledged = Math.max(acknowledged, acks[acks.length - 1]!);
    // Reopening cuts any torn tail; then every line must be an entry, in sequence.
    await (await JournalWriter.open(path, { bytesMax, filesKept: 50 })).close();
    const read = readJournal(path, {}, 50);
    assert.equal(read.skippedLines, 0, `round ${round}: bad lines`);
    const seqs = read.entries.map((e) => e.seq);
    if (seqs.length === 0) {
      assert.equal(acknowledged, -1, `round ${round}: acknowledged entries lost`);
      continue; // killed before its first write
    }
    assert.equal(seqs[0], 0);
    seqs.forEach((s, i) => i > 0 && assert.equal(s, seqs[i - 1]! + 1, `round ${round}: gap at ${i}`));
    assert.ok(seqs[seqs.length - 1]! >= acknowledged, `round ${round}: acknowledged seq ${acknowledged} lost (last ${seqs[seqs.length - 1]})`);
  }
  assert.ok(acknowledged > 100, 'the writer got work done between kills');
});

test('queries filter by time, process and incident', async (t) => {
  const path = join(tempDir(t), 'watchdog.jsonl');
  const j = await JournalWriter.open(path);
  j.append({ event: 'start', process: 'a', pid: 1 });
  await j.flush();
  await new Promise((r) => setTimeout(r, 20));
  const sinceMs = Date.now();
  j.append({ event: 'exit', process: 'b', pid: 2, incident: 'x' });
  j.append({ event: 'start', process: 'a', pid: 3, incident: 'x' });
  await j.close();
  assert.deepEqual(readJournal(path, { sinceMs }).entries.map((e) => e.pid), [2, 3]);
  assert.deepEqual(readJournal(path, { process: 'a' }).entries.map((e) => e.pid), [1, 3]);
  assert.deepEqual(readJournal(path, { incident: 'x', process: 'b' }).entries.map((e) => e.pid), [2]);
});

test('an oversized detail is dropped so the line stays under journalLineBytesMax; the cause is clipped', async (t) => {
  const path = join(tempDir(t), 'watchdog.jsonl');
  const j = await JournalWriter.open(path);
  const e = j.append({ event: 'fail', process: 'a', cause: 'x'.repeat(5000), detail: { big: 'y'.repeat(20_000) } });
  await j.close();
  const back = readJournal(path).entries[0]!;
  assert.equal(back.seq, e.seq);
  assert.deepEqual(back.detail, { truncated: true });
  assert.ok(back.cause!.length <= 1001);
});

test('corpus: every line is an entry or counted as skipped, as the file name says', () => {
  for (const f of readdirSync(corpusDir)) {
    const skipped = Number(/-skip(\d+)\.jsonl$/.exec(f)![1]);
    const read = readJournal(join(corpusDir, f));
    assert.equal(read.skippedLines, skipped, f);
    for (const e of read.entries) assert.deepEqual(parseJournalLine(encodeJournalLine(e).toString().trimEnd()), e, `${f}: round trip`);
  }
});

test('fuzz: parseJournalLine gives an entry or JOURNAL_LINE; encode → parse is the identity', () => {
  const entry: fc.Arbitrary<JournalEntry> = fc.record({
    v: fc.constant(1 as const),
    seq: fc.nat(),
    time: fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }).map((d) => d.toISOString()),
    timeUs: fc.nat(),
    event: fc.constantFrom(...journalEvents),
    process: fc.option(fc.string({ maxLength: 20 }), { nil: null }),
    pid: fc.option(fc.integer({ min: 1, max: 4_194_304 }), { nil: null }),
    cause: fc.option(fc.string({ maxLength: 100 }), { nil: null }),
    rung: fc.option(fc.constantFrom('restart-failed', 'partial-restart', 'full-restart', 'notify'), { nil: null }),
    incident: fc.option(fc.string({ maxLength: 30 }), { nil: null }),
    watchdogPid: fc.integer({ min: 1, max: 4_194_304 }),
  });
  fc.assert(
    fc.property(entry, (e) => {
      assert.deepEqual(parseJournalLine(encodeJournalLine(e).toString().trimEnd()), { ...e });
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json()), (line) => {
      try {
        parseJournalLine(line);
      } catch (err) {
        assert.ok(err instanceof MirrorboxError && err.code === 'JOURNAL_LINE', String(err));
      }
    }),
    { numRuns: 1000 },
  );
});

test('a failing disk (/dev/full: ENOSPC): appends never throw, flush rejects JOURNAL_WRITE, errors are reported and retried', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'watchdog.jsonl');
  symlinkSync('/dev/full', path);
  const j = await JournalWriter.open(path);
  const errors: string[] = [];
  j.onError((err) => errors.push(`${err.code}: ${err.message}`));
  const e = j.append({ event: 'start', process: 'a', pid: 1 });
  assert.equal(e.seq, 0);
  await assert.rejects(j.flush(), (err: Error & { code?: string }) => err.code === 'JOURNAL_WRITE' && /ENOSPC/.test(err.message));
  assert.match(errors[0]!, /^JOURNAL_WRITE: cannot write the journal .*ENOSPC/);
  // Entries keep coming while the disk is full; beyond the queue bound the oldest are dropped.
  const big = 'x'.repeat(900);
  for (let i = 0; i < 6000; i += 1) j.append({ event: 'exit', process: 'a', pid: 2, cause: big });
  assert.ok(j.droppedEntries > 0);
  await waitUntil(() => errors.length >= 2, 10_000, 'the write retried (every journalRetryMs)');
  await j.close();
});

test('appends after close are dropped and counted (reported once, never retried); close counts what it could not write', async (t) => {
  const path = join(tempDir(t), 'watchdog.jsonl');
  const j = await JournalWriter.open(path);
  const errors: string[] = [];
  j.onError((err) => errors.push(err.code));
  const printed: number[] = [];
  j.onAppend((e) => printed.push(e.seq));
  j.append({ event: 'watchdog', cause: 'stopped' });
  await j.close();
  assert.equal(j.droppedEntries, 0);
  // e.g. a process kept by `stop --keep-processes` exits before the watchdog process has ended.
  j.append({ event: 'exit', process: 'kept', pid: 7, cause: 'exited with code 0' });
  j.append({ event: 'exit', process: 'kept2', pid: 8, cause: 'exited with code 0' });
  assert.equal(j.droppedEntries, 2);
  assert.deepEqual(printed, [0], 'a dropped entry is not passed on as journaled');
  await new Promise((r) => setTimeout(r, journalRetryMs + 500));
  assert.deepEqual(errors, ['JOURNAL_CLOSED'], 'said once; no write (and no retry) after close');
  assert.deepEqual(readJournal(path).entries.map((e) => e.event), ['watchdog']);

  // A disk that fails until the end: what close() gives up on is counted too.
  const full = join(tempDir(t), 'full.jsonl');
  symlinkSync('/dev/full', full);
  const f = await JournalWriter.open(full);
  f.onError(() => undefined);
  for (let i = 0; i < 3; i += 1) f.append({ event: 'start', process: `p${i}`, pid: 10 + i });
  await f.close();
  assert.equal(f.droppedEntries, 3);
});

test('the watchdog keeps supervising when its journal cannot be written', async (t) => {
  const dir = watchdogDir(t);
  mkdirSync(join(dir, 'var'));
  symlinkSync('/dev/full', join(dir, 'var', 'journal.jsonl'));
  const config = writeConfig(
    dir,
    `
journal: ./var/journal.jsonl
checkIntervalMs: 50
ladder: [restart-failed]
processes:
  - { name: a, command: ${serviceCommand('a')}, ready: { stdout: "^ready a" } }
`,
  );
  const stateDir = join(dir, 'var');
  const w = await startWatchdog(t, config, stateDir, join(stateDir, 'journal.jsonl'));
  const pid = (await requestStatus(stateDir)).supervisor.processes[0]!.pid!;
  process.kill(pid, 'SIGKILL');
  let restarted = false;
  for (let i = 0; i < 200 && !restarted; i += 1) {
    const p = (await requestStatus(stateDir)).supervisor.processes[0]!;
    restarted = p.state === 'running' && p.pid !== pid && p.restarts === 1;
    if (!restarted) await new Promise((r) => setTimeout(r, 25));
  }
  assert.ok(restarted, 'restarted although every journal write fails');
  assert.match(w.proc.stderr(), /journal write failed; retrying/);
});

test('a rotation whose new file cannot be created is not done twice: rotated files survive, writing resumes', async (t) => {
  // Only the creation of a file must fail, not the renames before it; this machine has no
  // quota or small filesystem to make that happen, so that one fault is injected (a fake):
  // fs/promises.open fails once with ENOSPC for the live file, right after it was renamed.
  const path = join(tempDir(t), 'watchdog.jsonl');
  const bytesMax = 4096;
  const filesKept = 3;
  const j = await JournalWriter.open(path, { bytesMax, filesKept });
  let seq = 0;
  const fill = async (untilFile: string): Promise<void> => {
    while (!existsSync(untilFile)) {
      j.append({ event: 'exit', process: 'store', pid: 1000 + seq, cause: `exited with code ${seq}` });
      seq += 1;
      await j.flush();
    }
  };
  await fill(`${path}.2`);
  const realOpen = fsp.open;
  let failures = 0;
  fsp.open = (async (...args: Parameters<typeof realOpen>) => {
    if (args[0] === path && !existsSync(path) && failures === 0) {
      failures += 1;
      throw Object.assign(new Error(`ENOSPC: no space left on device, open '${path}'`), { code: 'ENOSPC' });
    }
    return realOpen(...args);
  }) as typeof realOpen;
  syncBuiltinESMExports();
  t.after(() => {
    fsp.open = realOpen;
    syncBuiltinESMExports();
  });
  const errors: string[] = [];
  j.onError((err) => errors.push(err.message));
  const rotatedBefore = readFileSync(`${path}.1`, 'utf8');
  await assert.rejects(fill(`${path}.3`), (err: Error & { code?: string }) => err.code === 'JOURNAL_WRITE' && /ENOSPC/.test(err.message));
  assert.equal(failures, 1);
  // The retry (every journalRetryMs) opens a new live file instead of rotating again.
  await waitUntil(() => existsSync(path), 10_000, 'the live file created by the retry');
  await j.flush();
  await j.close();
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.equal(readFileSync(`${path}.2`, 'utf8'), rotatedBefore, 'the rotated files moved once, not once per retry');
  const read = readJournal(path, {}, filesKept);
  assert.equal(read.skippedLines, 0);
  const seqs = read.entries.map((e) => e.seq);
  assert.equal(seqs.at(-1), seq - 1, 'the entry whose write failed is on disk');
  seqs.forEach((s, i) => i > 0 && assert.equal(s, seqs[i - 1]! + 1, 'contiguous'));
});
