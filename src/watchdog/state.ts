/**
 * The state file (<stateDir>/watchdog.state.json): what the running watchdog knows about itself
 * and each process, rewritten atomically (temp file, fsync, rename) whenever a process changes
 * state. A restarted watchdog reads it to adopt the processes still running; `watchdog status`
 * and `watchdog stop` read it when no watchdog answers. Format: FORMATS.md.
 *
 * Adoption decision for one recorded process (all must hold, else it is not adopted):
 *
 * | check                                            | if not                                     |
 * |--------------------------------------------------|--------------------------------------------|
 * | recorded under this boot id                      | ignore the record (PIDs from another boot) |
 * | recorded state was "running" (it had been ready) | stop what is left of it, start afresh      |
 * | /proc/PID exists with the recorded start ticks   | gone or PID reused: start afresh           |
 * | not a zombie, not stopped                        | stop what is left of it, start afresh      |
 * | same command line as the config now says         | config changed: stop it, start afresh      |
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { writeFile, rename, open } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { MirrorboxError, hasCode } from '../util/errors.js';
import { fsyncPath } from '../util/fsync.js';
import { bootId, verdictOf, type Verdict } from './proc-stat.js';
import * as limits from './limits.js';

export const stateVersion = 1;

const processRecordSchema = z.object({
  name: z.string(),
  command: z.array(z.string()),
  pid: z.number().int().positive().nullable(),
  pgid: z.number().int().positive().nullable(),
  startTicks: z.number().int().nonnegative().nullable(),
  state: z.string(),
  startedAtMs: z.number().nullable(),
  restarts: z.number().int().nonnegative(),
  lastCause: z.string().nullable(),
  adopted: z.boolean(),
  /** Its configured stop (signal, then SIGKILL after timeoutMs): `watchdog stop` without a config uses it. */
  stop: z.object({ signal: z.string().refine((s) => s in osConstants.signals, 'not a signal name'), timeoutMs: z.number().int().positive() }).optional(),
}).refine((r) => r.pgid === null || r.pgid === r.pid, { path: ['pgid'], message: 'must equal pid (each process leads its own group)' });
export type ProcessRecord = z.output<typeof processRecordSchema>;

const stateSchema = z.object({
  v: z.literal(stateVersion),
  bootId: z.string(),
  updatedAt: z.string(),
  watchdog: z.object({
    pid: z.number().int().positive(),
    startTicks: z.number().int().nonnegative(),
    startedAtMs: z.number(),
    config: z.string(),
    journal: z.string(),
    /** The journal's rotation (config journalRotate, defaults filled in), for readers and writers without the config. */
    journalRotate: z.object({ maxBytes: z.number().int().positive(), keep: z.number().int().positive() }).optional(),
    socket: z.string(),
    /** "running", or "stopped" after a clean stop, or "detached" after stop --keep-processes. */
    state: z.string(),
  }),
  processes: z.array(processRecordSchema),
});
export type StateFile = z.output<typeof stateSchema>;

/**
 * Creates the state folder (and any missing parent) 0700: it holds the control socket and the
 * processes' output pipes. A folder that already exists keeps its mode (it may be shared, e.g.
 * /run); returns that mode when it lets group or other users in, for the caller to report.
 */
export function makeStateDir(stateDir: string): number | undefined {
  mkdirSync(stateDir, { recursive: true, mode: limits.stateDirMode });
  const mode = statSync(stateDir).mode & 0o777;
  return (mode & limits.privateModeBits) === 0 ? undefined : mode;
}

export function statePaths(stateDir: string): { state: string; socket: string } {
  return { state: join(stateDir, 'watchdog.state.json'), socket: join(stateDir, 'watchdog.sock') };
}

/** The state file, or undefined when there is none; MirrorboxError STATE_FILE when it is damaged. */
export function readStateFile(path: string): StateFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (hasCode(err, 'ENOENT')) return undefined;
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MirrorboxError('STATE_FILE', `${path}: not JSON`);
  }
  const parsed = stateSchema.safeParse(value);
  if (!parsed.success) throw new MirrorboxError('STATE_FILE', `${path}: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}

/** Writes a state file atomically and synchronously: `PATH.tmp`, fsync, rename over PATH. */
export function writeStateFileSync(path: string, state: StateFile): void {
  const tmpPath = `${path}.tmp`;
  writeFileSync(tmpPath, JSON.stringify(state, null, 2) + '\n');
  fsyncPath(tmpPath);
  renameSync(tmpPath, path);
}

/** True when the watchdog recorded in the state file is still the same live process. */
export function recordedWatchdogAlive(state: StateFile): boolean {
  if (state.bootId !== bootId()) return false;
  return verdictOf(state.watchdog.pid, state.watchdog.startTicks).verdict === 'running';
}

export type AdoptionVerdict = { adopt: true } | { adopt: false; reason: string; alive: boolean };

/** Whether a recorded process can be adopted (see the table above). */
export function adoptionVerdict(record: ProcessRecord | undefined, state: StateFile, command: readonly string[]): AdoptionVerdict {
  if (!record || record.pid === null || record.startTicks === null) return { adopt: false, reason: 'no running process recorded', alive: false };
  if (state.bootId !== bootId()) return { adopt: false, reason: 'recorded before the last boot', alive: false };
  const { verdict } = verdictOf(record.pid, record.startTicks);
  const alive = verdict === 'running' || verdict === 'stopped';
  if (verdict !== 'running') return { adopt: false, reason: adoptionWords[verdict], alive };
  if (record.state !== 'running') return { adopt: false, reason: `it was "${record.state}", not running, when the watchdog went away`, alive };
  if (JSON.stringify(record.command) !== JSON.stringify(command)) return { adopt: false, reason: 'its command changed in the config', alive };
  return { adopt: true };
}

const adoptionWords: Record<Verdict, string> = {
  running: 'running',
  stopped: 'it is stopped (SIGSTOP)',
  zombie: 'it has exited (zombie)',
  vanished: 'it is no longer running',
  reused: 'it is no longer running (PID reused)',
};

/**
 * Writes the state file atomically; `schedule` coalesces bursts (at most one write in flight,
 * then one more with the latest snapshot).
 */
export class StateWriter {
  private busy = false;
  private dirty = false;
  private readonly tmpPath: string;

  /** Told when a write fails (it is retried every stateRetryMs). */
  onError: (err: unknown) => void = () => undefined;

  constructor(
    readonly path: string,
    private readonly snapshot: () => StateFile,
  ) {
    makeStateDir(dirname(path));
    this.tmpPath = `${path}.tmp`;
  }

  schedule(): void {
    this.dirty = true;
    if (!this.busy) void this.loop();
  }

  /** Writes now, synchronously (at startup and at the very end of a shutdown). */
  writeNow(): void {
    writeStateFileSync(this.path, this.snapshot());
  }

  /** Resolves once no write is pending (or the disk keeps failing for idleWaitMsMax). */
  async idle(): Promise<void> {
    const deadline = Date.now() + limits.stateIdleWaitMsMax;
    while ((this.busy || this.dirty) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  }

  private async loop(): Promise<void> {
    this.busy = true;
    try {
      while (this.dirty) {
        this.dirty = false;
        const text = JSON.stringify(this.snapshot(), null, 2) + '\n';
        await writeFile(this.tmpPath, text);
        const handle = await open(this.tmpPath, 'r');
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
        await rename(this.tmpPath, this.path);
      }
    } catch (err) {
      this.onError(err);
      this.dirty = true;
      setTimeout(() => this.schedule(), limits.stateRetryMs).unref();
    } finally {
      this.busy = false;
    }
  }
}
