/**
 * PID reuse and process groups. pid_max is 32768 on this machine (and on many appliances), so
 * the number of a process that ended soon names another process, which may lead a group of its
 * own (anything started with setsid). A stop must then signal neither that process nor its
 * group. The "other" process here is a real `sleep` in its own session; the handle says that
 * our process had the same pid with another start time, which is how a reused pid looks in /proc.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readProcStat, verdictOf } from '../src/watchdog/proc-stat.js';
import { adoptProcess, stopGroup } from '../src/watchdog/process-handle.js';

test('a stop of a process whose pid now names another group leader signals nothing', async (t) => {
  const other = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
  const exited = new Promise((r) => other.once('exit', r));
  t.after(() => {
    if (other.exitCode === null && other.signalCode === null) other.kill('SIGKILL');
  });
  const pid = other.pid!;
  const ticks = readProcStat(pid)!.startTicks;

  // Ours: adopted earlier with that pid, started before `other` (an older start time).
  const ours = adoptProcess(pid, pid, ticks - 1, Date.now() - 60_000);
  assert.deepEqual(ours.groupLeft(), [], 'the group under that number is not ours');
  let killJournaled = false;
  const outcome = await stopGroup(ours, 'SIGTERM', 200, () => (killJournaled = true));
  assert.deepEqual({ killed: outcome.killed, leftover: outcome.leftover }, { killed: false, leftover: [] });
  assert.equal(killJournaled, false);
  assert.match(ours.exitInfo?.cause ?? '', /PID reused by "sleep"/);
  assert.equal(verdictOf(pid, ticks).verdict, 'running', 'the other process was not signalled');

  // The same pid under its own start time is ours: stopped as a group.
  const same = adoptProcess(pid, pid, ticks, Date.now());
  assert.deepEqual(same.groupLeft(), [pid]);
  const stopped = await stopGroup(same, 'SIGTERM', 5000, () => undefined);
  assert.equal(stopped.killed, false);
  assert.equal(await exited, null, 'ended by a signal');
  assert.equal(other.signalCode, 'SIGTERM');
});
