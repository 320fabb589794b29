import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { classify, groupMembers, parseProcStat, readProcStat, verdictOf } from '../src/watchdog/proc-stat.js';
import { MirrorboxError } from '../src/util/errors.js';
import { waitUntil } from './helpers/watchdog.js';

test('parses /proc/PID/stat of this process, with comm and start ticks', () => {
  const stat = readProcStat(process.pid)!;
  assert.equal(stat.pid, process.pid);
  assert.equal(stat.ppid, process.ppid);
  assert.match(stat.state, /^[RS]$/);
  assert.ok(stat.startTicks > 0);
  const raw = readFileSync(`/proc/${process.pid}/stat`, 'latin1');
  assert.equal(String(stat.startTicks), raw.slice(raw.lastIndexOf(')') + 2).split(' ')[19]);
});

test('a comm with spaces and parentheses is parsed by its last ")"', () => {
  const fields = ['S', '1', '42', '42', '0', '-1', '0', '0', '0', '0', '0', '0', '0', '0', '0', '20', '0', '1', '0', '777', '0'];
  const stat = parseProcStat(`4242 (evil) S 9 (x) y) ${fields.join(' ')}\n`);
  assert.equal(stat.comm, 'evil) S 9 (x) y');
  assert.equal(stat.state, 'S');
  assert.equal(stat.pgrp, 42);
  assert.equal(stat.startTicks, 777);
});

test('fuzz: parseProcStat returns a stat or throws PROC_STAT_FORMAT, nothing else', () => {
  const field = fc.oneof(fc.integer({ min: -5, max: 1e9 }).map(String), fc.constantFrom('S', 'R', 'Z', '', 'x y', ')', '('));
  fc.assert(
    fc.property(fc.string({ maxLength: 20 }), fc.array(field, { maxLength: 30 }), fc.integer({ min: 0, max: 99999 }), (comm, fields, pid) => {
      const text = `${pid} (${comm}) ${fields.join(' ')}`;
      try {
        const stat = parseProcStat(text);
        assert.ok(Number.isSafeInteger(stat.startTicks) && stat.pid > 0);
      } catch (err) {
        assert.ok(err instanceof MirrorboxError && err.code === 'PROC_STAT_FORMAT', String(err));
      }
    }),
    { numRuns: 1000 },
  );
});

test('verdicts from a real process: running, stopped (SIGSTOP), running again, then vanished', async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  const pid = child.pid!;
  const ticks = readProcStat(pid)!.startTicks;
  try {
    assert.equal(verdictOf(pid, ticks).verdict, 'running');
    process.kill(pid, 'SIGSTOP');
    await waitUntil(() => verdictOf(pid, ticks).verdict === 'stopped', 5000, 'state T');
    process.kill(pid, 'SIGCONT');
    await waitUntil(() => verdictOf(pid, ticks).verdict === 'running', 5000, 'running again');
    assert.equal(verdictOf(pid, ticks + 1).verdict, 'reused', 'another start time is another process');
  } finally {
    child.kill('SIGKILL');
  }
  await new Promise((r) => child.once('exit', r));
  assert.equal(verdictOf(pid, ticks).verdict, 'vanished');
});

test('a zombie is told apart from a running process', async () => {
  // The exec'd `sleep 30` never reaps its child `sleep 0.05`, which stays a zombie.
  const parent = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const zombiePid = Number((await new Promise<Buffer>((r) => parent.stdout!.once('data', r))).toString().trim());
    const ticks = readProcStat(zombiePid)!.startTicks;
    await waitUntil(() => verdictOf(zombiePid, ticks).verdict === 'zombie', 5000, 'zombie');
    assert.equal(classify(readProcStat(zombiePid)!, ticks), 'zombie');
  } finally {
    parent.kill('SIGKILL');
  }
});

test('groupMembers lists the live members of a process group', async () => {
  const leader = spawn('sh', ['-c', 'sleep 30 & sleep 30 & wait'], { stdio: 'ignore', detached: true });
  const pgid = leader.pid!;
  try {
    await waitUntil(() => groupMembers(pgid).length === 3, 5000, 'sh and its two sleeps');
    process.kill(-pgid, 'SIGKILL');
    await waitUntil(() => groupMembers(pgid).length === 0, 5000, 'group gone');
  } finally {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});
