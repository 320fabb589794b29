/**
 * One running instance of a configured process: spawned by this watchdog (a child, whose exit
 * is an event) or adopted from a previous watchdog (not a child: its end is seen by polling
 * /proc). Either way it leads its own process group (spawned with setsid), so a stop reaches
 * the whole tree it started.
 *
 * Stopping, as the patent's "controlled shut-down ... kill only as a last resort":
 *
 * | step | action                                                   | ends when                             |
 * |------|----------------------------------------------------------|---------------------------------------|
 * | 1    | stop signal (default SIGTERM) to the group, then SIGCONT | leader gone and group empty           |
 * |      | (a SIGSTOPped process must run to handle it)             |                                       |
 * | 2    | after `timeoutMs`: SIGKILL to the group                  | leader gone and group empty           |
 * | 3    | after killWaitMsMax: give up, report the pids left       | (a process in D state ignores SIGKILL)|
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import assert from 'node:assert/strict';
import { MirrorboxError, hasCode, messageOf } from '../util/errors.js';
import { describeVerdict, groupMembers, readProcStat, verdictOf } from './proc-stat.js';
import * as limits from './limits.js';

export interface ExitInfo {
  /** For people and the journal: "exited with code 3", "killed by SIGKILL", "vanished from /proc". */
  cause: string;
  exitCode?: number;
  signal?: string;
}

export class ProcHandle {
  readonly pid: number;
  readonly pgid: number;
  readonly startTicks: number;
  readonly adopted: boolean;
  /** Epoch ms when the process started (from the state file for an adopted one). */
  readonly startedAtMs: number;
  readonly child: ChildProcess | undefined;
  private info: ExitInfo | undefined;
  private listener: ((info: ExitInfo) => void) | undefined;
  private readonly waiters = new Set<() => void>();
  private resolveEnded!: (info: ExitInfo) => void;
  /** Resolves when the process has ended (never rejects). */
  readonly ended: Promise<ExitInfo> = new Promise((resolve) => (this.resolveEnded = resolve));

  constructor(args: { pid: number; pgid: number; startTicks: number; adopted: boolean; startedAtMs: number; child?: ChildProcess }) {
    // Every process is started as the leader of its own group (setsid): the group is named by
    // the leader's (pid, startTicks), which is what makes groupLeft() safe against PID reuse.
    assert.equal(args.pgid, args.pid, 'a supervised process leads its own process group');
    this.pid = args.pid;
    this.pgid = args.pgid;
    this.startTicks = args.startTicks;
    this.adopted = args.adopted;
    this.startedAtMs = args.startedAtMs;
    this.child = args.child;
  }

  get exited(): boolean {
    return this.info !== undefined;
  }

  get exitInfo(): ExitInfo | undefined {
    return this.info;
  }

  /** The one listener told when the process ends (set by the supervisor). */
  onExit(listener: (info: ExitInfo) => void): void {
    this.listener = listener;
    if (this.info) listener(this.info);
  }

  /** Records the end of the process; later calls are ignored (exit event and /proc may both see it). */
  markExited(info: ExitInfo): void {
    if (this.info) return;
    this.info = info;
    this.resolveEnded(info);
    for (const wake of this.waiters) wake();
    this.waiters.clear();
    this.listener?.(info);
  }

  /**
   * For an adopted process (no exit event): looks in /proc and records the end if it is over.
   * A child's end is left to its exit event (which carries the code): until that event, the
   * child is a zombie whose pid nobody else can take.
   */
  pollExit(): void {
    if (this.info || this.child) return;
    const { verdict, stat } = verdictOf(this.pid, this.startTicks);
    if (verdict === 'vanished' || verdict === 'zombie' || verdict === 'reused') this.markExited({ cause: describeVerdict(verdict, stat) });
  }

  /** Resolves true once the process has ended, false after `timeoutMs`. */
  waitExited(timeoutMs: number): Promise<boolean> {
    if (this.info) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.waiters.delete(wake);
        resolve(this.info !== undefined);
      };
      const timer = setTimeout(wake, timeoutMs);
      // A child's end arrives as an event; an adopted one's only shows in /proc.
      const poll = setInterval(() => this.pollExit(), limits.stopPollMs);
      this.waiters.add(wake);
    });
  }

  /**
   * Live processes in this instance's process group (the leader too while it runs); never the
   * group of another process that got the same number after ours emptied (see groupMembers).
   */
  groupLeft(): number[] {
    return groupMembers(this.pgid, this.startTicks);
  }
}

export function describeExit(code: number | null, signal: NodeJS.Signals | null): ExitInfo {
  if (signal !== null) return { cause: `killed by ${signal}`, signal };
  return { cause: `exited with code ${code ?? '?'}`, exitCode: code ?? -1 };
}

/**
 * Set in the environment of every process the watchdog starts: the state folder (which names
 * the watchdog: one per folder) and the process's name. By them a restarted watchdog finds the
 * instances its predecessor started but did not get to record, and `watchdog stop` without a
 * watchdog finds everything the application still runs.
 */
export const startedByEnv = { stateDir: 'MIRRORBOX_WATCHDOG_STATE_DIR', process: 'MIRRORBOX_WATCHDOG_PROCESS' } as const;

export interface SpawnSpec {
  command: readonly string[];
  cwd: string;
  env?: Record<string, string> | undefined;
  /** Called with the new pid right after the fork (e.g. to reset its nice value). */
  onSpawned?: ((pid: number) => void) | undefined;
}

/**
 * Starts a process as the leader of a new session and process group, its stdout and stderr
 * going to `outputFd` (closed here once the child has it: see OutputLog.childFd). Throws
 * MirrorboxError SPAWN_FAILED when it cannot be started at all.
 */
export async function spawnProcess(spec: SpawnSpec, outputFd: number): Promise<ProcHandle> {
  assert.ok(spec.command.length > 0, 'empty command');
  const [program, ...args] = spec.command as [string, ...string[]];
  let child: ChildProcess;
  try {
    child = spawn(program, args, {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.env },
      stdio: ['ignore', outputFd, outputFd],
      detached: true,
    });
  } catch (err) {
    closeSync(outputFd);
    throw new MirrorboxError('SPAWN_FAILED', `cannot start ${program}: ${messageOf(err)}`, { cause: err });
  }
  closeSync(outputFd);
  const pid = child.pid;
  if (pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once('error', resolve));
    throw new MirrorboxError('SPAWN_FAILED', `cannot start ${program}: ${hasCode(err, 'ENOENT') ? 'no such program or cwd' : messageOf(err)}`, { cause: err });
  }
  spec.onSpawned?.(pid);
  // uv_spawn returns after exec succeeded, and the child cannot be reaped before we yield:
  // /proc/PID/stat is there (at worst as a zombie).
  const stat = readProcStat(pid);
  assert.ok(stat, `spawned process ${pid} is not in /proc`);
  const handle = new ProcHandle({ pid, pgid: pid, startTicks: stat.startTicks, adopted: false, startedAtMs: Date.now(), child });
  child.once('exit', (code, signal) => handle.markExited(describeExit(code, signal)));
  child.on('error', () => undefined); // e.g. a kill() after exit; the exit event tells the story
  return handle;
}

/**
 * A spare: `/bin/sh` forked ahead of need, in its own session, with the process's cwd, env and
 * output pipe, blocked reading one line from a pipe. Releasing it writes that line; the shell
 * then execs the real command (same pid, same process group), so a restart pays no fork and no
 * spawn latency (fork of a Node process costs 1–10 ms on a loaded machine: see README.md).
 * If the watchdog dies, the pipe closes, `read` fails, and the spare exits without running
 * anything.
 */
export const spareScript = 'read -r go || exit 0; exec "$@" </dev/null';
/** The spare shell's $0: its argv is /bin/sh -c spareScript spareName COMMAND… until it execs. */
export const spareName = 'mirrorbox-spare';

/** Is this argv (/proc/PID/cmdline) a spare shell still waiting? */
export function isSpareArgv(argv: readonly string[]): boolean {
  return argv[0] === '/bin/sh' && argv[1] === '-c' && argv[2] === spareScript && argv[3] === spareName;
}

export class Spare {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly startTicks: number;
  private released = false;

  private constructor(child: ChildProcess, pid: number, startTicks: number) {
    this.child = child;
    this.pid = pid;
    this.startTicks = startTicks;
  }

  /**
   * Forks a spare for `spec`, its output to `outputFd` (closed here); undefined when /bin/sh
   * cannot be started (the caller spawns directly).
   */
  static prepare(spec: SpawnSpec, outputFd: number): Spare | undefined {
    let child: ChildProcess;
    try {
      child = spawn('/bin/sh', ['-c', spareScript, spareName, ...spec.command], {
        cwd: spec.cwd,
        env: { ...process.env, ...spec.env },
        stdio: ['pipe', outputFd, outputFd],
        detached: true,
      });
    } catch {
      return undefined;
    } finally {
      closeSync(outputFd);
    }
    child.on('error', () => undefined);
    child.stdin!.on('error', () => undefined);
    if (child.pid !== undefined) spec.onSpawned?.(child.pid);
    const stat = child.pid === undefined ? undefined : readProcStat(child.pid);
    if (!stat || child.pid === undefined) return undefined;
    return new Spare(child, child.pid, stat.startTicks);
  }

  /** Still waiting, and still the same process? */
  get usable(): boolean {
    if (this.released || this.child.exitCode !== null || this.child.signalCode !== null) return false;
    return verdictOf(this.pid, this.startTicks).verdict === 'running';
  }

  /** Lets the spare exec the command; returns the handle of what it becomes. */
  release(): ProcHandle {
    assert.ok(this.usable, 'releasing a spare that is not usable');
    this.released = true;
    const handle = new ProcHandle({ pid: this.pid, pgid: this.pid, startTicks: this.startTicks, adopted: false, startedAtMs: Date.now(), child: this.child });
    this.child.once('exit', (code, signal) => handle.markExited(describeExit(code, signal)));
    this.child.stdin!.end('\n');
    return handle;
  }

  /** Ends an unused spare (it runs nothing but the waiting shell). */
  discard(): void {
    if (this.released) return;
    this.released = true;
    this.child.stdin!.destroy();
    if (this.child.exitCode === null && this.child.signalCode === null) signalGroup(this.pid, 'SIGKILL');
    this.child.unref();
  }
}

/** Takes over a process found running in /proc (recorded by a previous watchdog). */
export function adoptProcess(pid: number, pgid: number, startTicks: number, startedAtMs: number): ProcHandle {
  return new ProcHandle({ pid, pgid, startTicks, adopted: true, startedAtMs });
}

/** Sends a signal to a whole process group; a group already gone is not an error. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  assert.ok(pgid > 1, `refusing to signal process group ${pgid}`);
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    if (!hasCode(err, 'ESRCH')) throw err;
  }
}

async function waitGroupGone(handle: ProcHandle, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  if (!(await handle.waitExited(timeoutMs))) return false;
  for (;;) {
    if (handle.groupLeft().length === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, limits.stopPollMs));
  }
}

export interface StopOutcome {
  /** True when SIGKILL was needed. */
  killed: boolean;
  /** Pids still in the group after everything (normally none). */
  leftover: number[];
  elapsedMs: number;
}

/**
 * Stops a process and everything in its group: signal, wait, SIGKILL (see the table above).
 * `onKill` runs just before SIGKILL is sent (the supervisor journals it).
 */
export async function stopGroup(handle: ProcHandle, signal: NodeJS.Signals, timeoutMs: number, onKill: () => void): Promise<StopOutcome> {
  const startedMs = Date.now();
  // An adopted process may have ended since it was last looked at, and its pid may now name
  // another process: check in /proc before signalling anything.
  handle.pollExit();
  if (!handle.exited) {
    signalGroup(handle.pgid, signal);
    if (signal !== 'SIGCONT') signalGroup(handle.pgid, 'SIGCONT');
  } else if (handle.groupLeft().length > 0) {
    // The leader is gone but left children behind: they get the same controlled stop.
    signalGroup(handle.pgid, signal);
    signalGroup(handle.pgid, 'SIGCONT');
  } else {
    return { killed: false, leftover: [], elapsedMs: 0 };
  }
  if (await waitGroupGone(handle, timeoutMs)) return { killed: false, leftover: [], elapsedMs: Date.now() - startedMs };
  handle.pollExit();
  if (handle.exited && handle.groupLeft().length === 0) return { killed: false, leftover: [], elapsedMs: Date.now() - startedMs };
  onKill();
  signalGroup(handle.pgid, 'SIGKILL');
  const gone = await waitGroupGone(handle, limits.killWaitMsMax);
  return { killed: true, leftover: gone ? [] : handle.groupLeft(), elapsedMs: Date.now() - startedMs };
}
