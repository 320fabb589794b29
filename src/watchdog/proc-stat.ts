/**
 * The operating system's own record of a process: /proc/PID/stat (proc(5)). This is the
 * patent's "application process status information maintained by the operating system".
 *
 * A PID alone does not name a process (PIDs are reused), so every process the watchdog knows
 * is identified by (pid, startTicks): field 22 of /proc/PID/stat, the start time in clock
 * ticks since boot, plus the boot id for records that outlive a boot.
 *
 * | what /proc says for (pid, startTicks)    | verdict   | what it means                         |
 * |------------------------------------------|-----------|---------------------------------------|
 * | no /proc/PID                             | vanished  | exited and was reaped                  |
 * | present, other start time                | reused    | exited; the PID now names another one  |
 * | present, state Z or X                    | zombie    | exited, not reaped yet (or never: PID 1 |
 * |                                          |           | here does not reap orphans)            |
 * | present, state T or t                    | stopped   | SIGSTOP/SIGTSTP or a tracer: not running|
 * | present, state R S D I W P K             | running   | alive                                  |
 */
import { readFileSync, readdirSync } from 'node:fs';
import { MirrorboxError, hasCode } from '../util/errors.js';

export interface ProcStat {
  pid: number;
  /** The executable name, up to 15 characters, as the kernel keeps it (may hold spaces and parentheses). */
  comm: string;
  /** One-letter state: R running, S sleeping, D disk sleep, Z zombie, T stopped, t tracing stop, X dead, I idle... */
  state: string;
  ppid: number;
  /** Process group id (the watchdog starts each process as the leader of its own group). */
  pgrp: number;
  session: number;
  /** Start time in clock ticks since boot: with the pid, the identity of a process. */
  startTicks: number;
}

export type Verdict = 'running' | 'stopped' | 'zombie' | 'vanished' | 'reused';

/** Parses the text of /proc/PID/stat. Throws MirrorboxError PROC_STAT_FORMAT on anything else. */
export function parseProcStat(text: string): ProcStat {
  // comm is in parentheses and may itself contain ") " (it is any 15 bytes): the last ')' ends it.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open <= 0 || close < open) throw new MirrorboxError('PROC_STAT_FORMAT', 'no "(comm)" in /proc/PID/stat');
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 1).trim().split(/\s+/);
  // rest[0] is field 3 (state); field n is rest[n - 3].
  const fieldsAfterCommMin = 20;
  if (!Number.isSafeInteger(pid) || pid <= 0 || rest.length < fieldsAfterCommMin) {
    throw new MirrorboxError('PROC_STAT_FORMAT', 'too few fields in /proc/PID/stat');
  }
  const state = rest[0]!;
  const num = (field: number): number => {
    const value = Number(rest[field - 3]);
    if (!Number.isSafeInteger(value)) throw new MirrorboxError('PROC_STAT_FORMAT', `field ${field} of /proc/PID/stat is not an integer`);
    return value;
  };
  if (!/^[A-Za-z]$/.test(state)) throw new MirrorboxError('PROC_STAT_FORMAT', `bad state "${state}" in /proc/PID/stat`);
  return { pid, comm: text.slice(open + 1, close), state, ppid: num(4), pgrp: num(5), session: num(6), startTicks: num(22) };
}

/** /proc/PID/stat of one process, or undefined when there is no such process. */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch (err) {
    if (hasCode(err, 'ENOENT') || hasCode(err, 'ESRCH')) return undefined;
    throw err;
  }
  return parseProcStat(text);
}

/** What has become of the process identified by (pid, startTicks). */
export function verdictOf(pid: number, startTicks: number): { verdict: Verdict; stat?: ProcStat } {
  const stat = readProcStat(pid);
  if (!stat) return { verdict: 'vanished' };
  return { verdict: classify(stat, startTicks), stat };
}

export function classify(stat: ProcStat, startTicks: number): Verdict {
  if (stat.startTicks !== startTicks) return 'reused';
  if (stat.state === 'Z' || stat.state === 'X' || stat.state === 'x') return 'zombie';
  if (stat.state === 'T' || stat.state === 't') return 'stopped';
  return 'running';
}

/** A person's words for a verdict, used as the journal's `cause`. */
export function describeVerdict(verdict: Verdict, stat?: ProcStat): string {
  switch (verdict) {
    case 'vanished':
      return 'vanished from /proc';
    case 'reused':
      return `vanished from /proc (PID reused by "${stat?.comm ?? '?'}")`;
    case 'zombie':
      return 'exited (zombie in /proc)';
    case 'stopped':
      return stat?.state === 't' ? 'stopped by a tracer (state t)' : 'stopped (SIGSTOP, state T)';
    case 'running':
      return 'running';
  }
}

/**
 * Live (non-zombie) members of a process group, found by scanning /proc.
 *
 * A group id is its leader's pid. Once the leader has been reaped and the group is empty, the
 * kernel may hand that number to a new process, which may lead a group of its own (anything
 * started with setsid). With `leaderStartTicks`, the group is taken to be the one our leader
 * (pid = pgid, that start time) led: when /proc shows another process under the leader's pid,
 * the number was reused, and since the kernel never reuses a pid that still names a group, our
 * group is empty: [] (never somebody else's group).
 */
export function groupMembers(pgid: number, leaderStartTicks?: number): number[] {
  // Fast path: no process at all in the group.
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if (hasCode(err, 'ESRCH')) return [];
    if (!hasCode(err, 'EPERM')) throw err;
  }
  if (leaderStartTicks !== undefined && verdictOf(pgid, leaderStartTicks).verdict === 'reused') return [];
  const members: number[] = [];
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    let stat: ProcStat | undefined;
    try {
      stat = readProcStat(Number(name));
    } catch {
      continue; // a process that exited while we read it
    }
    if (!stat || stat.pgrp !== pgid) continue;
    // Reused while we scanned: the group under this id is no longer ours.
    if (leaderStartTicks !== undefined && stat.pid === pgid && stat.startTicks !== leaderStartTicks) return [];
    if (stat.state !== 'Z' && stat.state !== 'X') members.push(stat.pid);
  }
  return members;
}

export interface SessionLeader {
  pid: number;
  startTicks: number;
  /** The process's environment as it was at exec (/proc/PID/environ), "NAME=value" each. */
  environ: string[];
  /** Its argv (/proc/PID/cmdline). */
  argv: string[];
}

/**
 * Live session leaders (pid = session id: what the watchdog starts, each with setsid) whose
 * environment holds `entry` ("NAME=value"). Processes of other users (EACCES) are passed over.
 */
export function sessionLeadersWith(entry: string): SessionLeader[] {
  const found: SessionLeader[] = [];
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(name);
    try {
      const stat = readProcStat(pid);
      if (!stat || stat.session !== pid || stat.state === 'Z' || stat.state === 'X') continue;
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (!environ.includes(entry)) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.at(-1) === '') argv.pop();
      found.push({ pid, startTicks: stat.startTicks, environ, argv });
    } catch {
      continue; // exited while we read it, or not ours to read
    }
  }
  return found;
}

let bootIdCached: string | undefined;

/** This boot's id: PIDs and start ticks recorded under another boot id mean nothing. */
export function bootId(): string {
  bootIdCached ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return bootIdCached;
}

/** Identity of the calling process (for the state file). */
export function selfStartTicks(): number {
  return readProcStat(process.pid)!.startTicks;
}
