/**
 * The application monitor: starts the configured processes in order, watches them (exit
 * events, /proc every checkIntervalMs, liveness probes) and carries out the ladder's remedies.
 *
 * One async "remedy loop" runs at a time, so remedies never overlap: failures only mark a
 * process failed, journal it, and wake the loop. The loop asks ladder.decide() what to do,
 * does it, then checks every process again (the patent's step 207); a process that is still
 * (or again) down sends it round once more, escalating. See README.md for the table.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { MirrorboxError, messageOf } from '../util/errors.js';
import type { ProcessConfig, Rung, WatchdogConfig } from './config.js';
import type { JournalInput, JournalWriter } from './journal.js';
import { decide, SlidingWindow, type LadderPolicy } from './ladder.js';
import * as limits from './limits.js';
import { buildAlert } from './notify/alert.js';
import type { Notifier } from './notify/notifier.js';
import { OutputLog, type LineWait } from './output-log.js';
import { describeVerdict, sessionLeadersWith, verdictOf } from './proc-stat.js';
import { makeProbe, type Probe } from './probes.js';
import { adoptProcess, isSpareArgv, spawnProcess, startedByEnv, stopGroup, Spare, type ExitInfo, type ProcHandle } from './process-handle.js';
import { adoptionVerdict, type ProcessRecord, type StateFile } from './state.js';

export type MemberState = 'stopped' | 'starting' | 'running' | 'stopping' | 'failed' | 'held';
type Remedy = Exclude<Rung, 'notify'>;

interface Context {
  incident: string | null;
  rung: string | null;
}

class Member {
  handle: ProcHandle | undefined;
  state: MemberState = 'stopped';
  generation = 0;
  starts = 0;
  restarts = 0;
  lastCause: string | null = null;
  liveTimer: NodeJS.Timeout | undefined;
  liveFailures = 0;
  liveBusy = false;
  /** When (performance.now() ms) /proc first showed this child ended, its exit event not yet in. */
  goneSinceMs: number | null = null;
  /** A shell forked ahead of the next restart (see Spare), when `spare` is on. */
  spare: Spare | undefined;
  /** Reads the process's output pipe into its log (opened at start-up, or at its first start). */
  output: OutputLog | undefined;
  readonly failureWindow: SlidingWindow | undefined;
  /** The configured env plus startedByEnv. */
  readonly env: Record<string, string>;
  readonly live: { probe: Probe; describe: string } | undefined;
  readonly ready: { probe: Probe; describe: string } | { stdout: RegExp; describe: string } | undefined;

  constructor(
    readonly index: number,
    readonly spec: ProcessConfig,
    readonly cwd: string,
    stateDir: string,
  ) {
    this.env = { ...spec.env, [startedByEnv.stateDir]: stateDir, [startedByEnv.process]: spec.name };
    this.failureWindow = spec.budget ? new SlidingWindow(spec.budget.windowSeconds * 1000) : undefined;
    this.live = spec.live ? makeProbe(spec.live, cwd) : undefined;
    if (spec.ready?.stdout !== undefined) this.ready = { stdout: new RegExp(spec.ready.stdout), describe: `stdout /${spec.ready.stdout}/` };
    else if (spec.ready) this.ready = makeProbe(spec.ready, cwd);
  }

  get name(): string {
    return this.spec.name;
  }
}

interface Incident {
  id: string;
  openedAtMs: number;
  attempts: { rung: Remedy; atMs: number; outcome: string }[];
  rungIndex: number;
  attemptsAtRung: number;
  retrying: boolean;
  held: boolean;
  notified: boolean;
  failures: { process: string; cause: string; atMs: number }[];
  /** Processes (re)started by this incident's remedies: their failing again climbs the ladder. */
  restarted: Set<string>;
}

export interface ProcessStatus {
  name: string;
  pid: number | null;
  state: MemberState;
  adopted: boolean;
  startedAt: string | null;
  uptimeMs: number | null;
  restarts: number;
  lastCause: string | null;
}

export interface SupervisorStatus {
  application: string;
  incident: { id: string; openedAt: string; attempts: number; rung: string | null; held: boolean; retrying: boolean } | null;
  rungCounters: Record<Remedy, number>;
  incidents: number;
  processes: ProcessStatus[];
}

/** What `watchdog restart` did (the control reply carries it). */
export interface OperatorRestart {
  /** Started in configuration order, each once ready. */
  started: { name: string; pid: number; readyMs: number }[];
  /** Named, but running already: left alone. */
  alreadyRunning: string[];
  /** The incident this restart closed (journal `resolve`), if one was open. */
  resolved: string | null;
  /** Processes still held (not named in the restart). */
  held: string[];
}

/** The journal cause of a start the operator asked for. */
export const operatorStartCause = 'watchdog restart (operator)';

export interface SupervisorOptions {
  config: WatchdogConfig;
  journal: JournalWriter;
  notifier: Notifier;
  log: Logger;
  /** Called whenever what the state file holds has changed. */
  onChange: () => void;
  /** Called with each process the supervisor starts, right after the fork. */
  onSpawned?: (pid: number) => void;
}

export function newIncidentId(nowMs = Date.now()): string {
  const stamp = new Date(nowMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export class Supervisor {
  readonly members: Member[];
  private readonly config: WatchdogConfig;
  private readonly journal: JournalWriter;
  private readonly notifier: Notifier;
  private readonly log: Logger;
  private readonly onChange: () => void;
  private readonly onSpawned: ((pid: number) => void) | undefined;
  private readonly policy: LadderPolicy;
  private readonly appWindow: SlidingWindow | undefined;
  private incident: Incident | undefined;
  private busy = false;
  private idleWaiters: (() => void)[] = [];
  /** An operator restart waits for the loop: the loop stops after its current step. */
  private operatorPending = false;
  /** Operator restarts, one after the other. */
  private operatorTurn: Promise<unknown> = Promise.resolve();
  /** Cuts the remedy loop's backoff wait short (an operator restart takes over). */
  private napper: AbortController | undefined;
  private shuttingDown = false;
  private readonly abort = new AbortController();
  private checkTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  readonly rungCounters: Record<Remedy, number> = { 'restart-failed': 0, 'partial-restart': 0, 'full-restart': 0 };
  private incidents = 0;

  constructor(options: SupervisorOptions) {
    this.config = options.config;
    this.journal = options.journal;
    this.notifier = options.notifier;
    this.log = options.log;
    this.onChange = options.onChange;
    this.onSpawned = options.onSpawned;
    this.members = this.config.processes.map((spec, i) => new Member(i, spec, resolve(this.config.cwd, spec.cwd ?? '.'), this.config.stateDir));
    this.policy = { ladder: this.config.ladder, attemptsPerRung: this.config.attemptsPerRung, onExhausted: this.config.onExhausted, backoff: this.config.backoff };
    this.appWindow = this.config.budget ? new SlidingWindow(this.config.budget.windowSeconds * 1000) : undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Start: adopt what a previous watchdog left running, start the rest in order.

  /**
   * Brings the application up. Processes recorded in `previous` and still running are adopted
   * while they form an unbroken prefix of the start order; from the first one that is not
   * running, everything is (stopped in reverse order if alive, then) started forward, because a
   * later process may depend on an earlier one (the partial-restart rule, applied at boot).
   */
  async startAll(previous: StateFile | undefined): Promise<void> {
    this.busy = true;
    try {
      // Read every output pipe first: adopted processes may be waiting to write.
      for (const m of this.members) {
        try {
          this.outputOf(m);
        } catch (err) {
          this.log.error({ process: m.name, err: messageOf(err) }, 'cannot read the output pipe (its start will fail and say why)');
        }
      }
      const records = new Map((previous?.processes ?? []).map((r) => [r.name, r]));
      const verdicts = this.members.map((m) => (previous ? adoptionVerdict(records.get(m.name), previous, m.spec.command) : undefined));
      let from = this.members.findIndex((_, i) => verdicts[i]?.adopt !== true);
      if (from < 0) from = this.members.length;
      for (let i = 0; i < from; i += 1) this.adopt(this.members[i]!, records.get(this.members[i]!.name)!, previous!);
      for (let i = this.members.length - 1; i >= from; i -= 1) {
        const m = this.members[i]!;
        const v = verdicts[i];
        const record = records.get(m.name);
        if (!v || !record || record.pid === null || record.startTicks === null) continue;
        const handle = adoptProcess(record.pid, record.pgid ?? record.pid, record.startTicks, record.startedAtMs ?? Date.now());
        // Alive, or dead with processes left in its group (they could hold what the new one needs).
        if (v.adopt || v.alive || handle.groupLeft().length > 0) {
          const why = v.adopt ? `restarting from ${this.members[from]!.name}, which is not running` : v.alive ? v.reason : 'processes left in its group';
          m.handle = handle;
          await this.stopMember(m, why, { incident: null, rung: null });
        }
      }
      await this.stopOrphans(previous, records);
      await this.stopUnrecorded();
      for (let i = from; i < this.members.length && !this.shuttingDown; i += 1) {
        if (!(await this.startMember(this.members[i]!, { incident: null, rung: null }))) break;
      }
    } finally {
      this.setIdle();
    }
    // A stop that came during the start has cleared the timers already: start none after it.
    if (!this.shuttingDown) this.checkTimer = setInterval(() => this.checkNow(), this.config.checkIntervalMs);
    this.kick();
  }

  private adopt(m: Member, record: ProcessRecord, previous: StateFile): void {
    assert.ok(record.pid !== null && record.startTicks !== null, 'adopting a record without pid');
    m.handle = adoptProcess(record.pid, record.pgid ?? record.pid, record.startTicks, record.startedAtMs ?? Date.now());
    m.generation += 1;
    const generation = m.generation;
    m.handle.onExit((info) => this.onExit(m, generation, info));
    m.state = 'running';
    m.starts = 1;
    m.restarts = record.restarts;
    m.lastCause = record.lastCause;
    this.write({ event: 'adopt', process: m.name, pid: record.pid, cause: `still running from watchdog ${previous.watchdog.pid}`, detail: { startTicks: record.startTicks } });
    this.startLiveness(m);
    this.prepareSpare(m);
    this.onChange();
  }

  /** Processes a previous watchdog ran under names the config no longer has. */
  private async stopOrphans(previous: StateFile | undefined, records: Map<string, ProcessRecord>): Promise<void> {
    if (!previous) return;
    const names = new Set(this.members.map((m) => m.name));
    for (const record of [...records.values()].reverse()) {
      if (names.has(record.name) || record.pid === null || record.startTicks === null) continue;
      const v = adoptionVerdict(record, previous, record.command);
      const handle = adoptProcess(record.pid, record.pgid ?? record.pid, record.startTicks, record.startedAtMs ?? Date.now());
      if (!v.adopt && !v.alive && handle.groupLeft().length === 0) continue;
      await this.stopStray(record.name, handle, { signal: 'SIGTERM', timeoutMs: limits.stopTimeoutMsDefault }, 'no longer in the config');
    }
  }

  /**
   * Instances a previous watchdog started but did not record: it ended between a spawn and the
   * state file write after it (the write is asynchronous, off the restart path). They carry
   * startedByEnv and the configured command (the end of their argv: a script's interpreter may
   * come first); every one that is not adopted is stopped, so nothing runs twice. Spare shells
   * (a previous watchdog's, which exit by themselves, and this one's) are not instances.
   */
  private async stopUnrecorded(): Promise<void> {
    const adopted = new Set(this.members.flatMap((m) => (m.handle && !m.handle.exited ? [m.handle.pid] : [])));
    const found = sessionLeadersWith(`${startedByEnv.stateDir}=${this.config.stateDir}`);
    for (const m of [...this.members].reverse()) {
      const command = m.spec.command;
      for (const p of found) {
        if (adopted.has(p.pid) || !p.environ.includes(`${startedByEnv.process}=${m.name}`)) continue;
        const at = p.argv.length - command.length;
        if (at < 0 || isSpareArgv(p.argv) || !command.every((arg, i) => p.argv[at + i] === arg)) continue;
        const handle = adoptProcess(p.pid, p.pid, p.startTicks, Date.now());
        await this.stopStray(m.name, handle, m.spec.stop, 'not in the state file: started by the previous watchdog just before it ended');
      }
    }
  }

  /** Controlled stop of a process that is not (or no longer) a member's instance. */
  private async stopStray(name: string, handle: ProcHandle, stop: { signal: string; timeoutMs: number }, cause: string): Promise<void> {
    const signal = stop.signal as NodeJS.Signals;
    this.write({ event: 'stop', process: name, pid: handle.pid, cause, signal });
    await stopGroup(handle, signal, stop.timeoutMs, () =>
      this.write({ event: 'kill', process: name, pid: handle.pid, cause: `did not stop within ${stop.timeoutMs} ms of ${signal}`, signal: 'SIGKILL' }),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Watching

  /**
   * Compares the process list with /proc (the patent's check against "application process
   * status information maintained by the operating system"). Cheap: one read per process.
   */
  checkNow(): void {
    for (const m of this.members) {
      const h = m.handle;
      if (!h || h.exited || (m.state !== 'running' && m.state !== 'starting')) continue;
      const { verdict, stat } = verdictOf(h.pid, h.startTicks);
      if (verdict === 'running') {
        m.goneSinceMs = null;
      } else if (verdict === 'stopped') {
        if (m.state === 'running') this.markFailed(m, 'fail', describeVerdict(verdict, stat));
      } else if (!h.child) {
        h.markExited({ cause: describeVerdict(verdict, stat) });
      } else {
        // Our own child: its exit event (with code and signal) is due any moment; act on /proc
        // only if it has not come a whole check interval later. (Time, not a count of checks:
        // the check after each remedy can follow the timer's with no event processed between.)
        const nowMs = performance.now();
        m.goneSinceMs ??= nowMs;
        if (nowMs - m.goneSinceMs >= this.config.checkIntervalMs) h.markExited({ cause: describeVerdict(verdict, stat) });
      }
    }
  }

  private onExit(m: Member, generation: number, info: ExitInfo): void {
    if (generation !== m.generation) return;
    if (m.state === 'stopping' || m.state === 'stopped') return; // asked for: stopMember journals it
    const extra: Partial<JournalInput> = {};
    if (info.exitCode !== undefined) extra.exitCode = info.exitCode;
    if (info.signal !== undefined) extra.signal = info.signal;
    if (m.state === 'failed' || m.state === 'held') {
      this.write({ event: 'exit', process: m.name, pid: m.handle?.pid ?? null, cause: info.cause, incident: this.incident?.id ?? null, ...extra });
      return;
    }
    this.markFailed(m, 'exit', info.cause, extra);
  }

  private markFailed(m: Member, event: 'exit' | 'fail', cause: string, extra: Partial<JournalInput> = {}): void {
    const wasStarting = m.state === 'starting';
    m.state = 'failed';
    m.lastCause = cause;
    this.stopLiveness(m);
    const incident = this.ensureIncident();
    incident.failures.push({ process: m.name, cause, atMs: Date.now() });
    if (incident.failures.length > limits.incidentAttemptsKeptMax) incident.failures.shift();
    this.write({ event, process: m.name, pid: m.handle?.pid ?? null, cause, incident: incident.id, ...extra });
    this.onChange();
    if (this.shuttingDown) return;
    if (incident.held) {
      this.holdMember(m, incident, 'the incident is on hold');
      return;
    }
    if (!wasStarting) this.kick();
  }

  private ensureIncident(): Incident {
    clearTimeout(this.stableTimer);
    this.stableTimer = undefined;
    if (!this.incident) {
      this.incidents += 1;
      this.incident = {
        id: newIncidentId(),
        openedAtMs: Date.now(),
        attempts: [],
        rungIndex: 0,
        attemptsAtRung: 0,
        retrying: false,
        held: false,
        notified: false,
        failures: [],
        restarted: new Set(),
      };
    }
    return this.incident;
  }

  private startLiveness(m: Member): void {
    const live = m.live;
    const spec = m.spec.live;
    if (!live || !spec) return;
    this.stopLiveness(m);
    m.liveFailures = 0;
    const generation = m.generation;
    m.liveTimer = setInterval(() => {
      if (m.liveBusy || m.state !== 'running' || generation !== m.generation) return;
      m.liveBusy = true;
      live
        .probe(spec.timeoutMs)
        .then(() => {
          m.liveFailures = 0;
        })
        .catch((err: unknown) => {
          m.liveFailures += 1;
          if (m.liveFailures >= spec.failures && m.state === 'running' && generation === m.generation) {
            this.markFailed(m, 'fail', `liveness probe failed ${m.liveFailures} times in a row: ${messageOf(err)}`);
          }
        })
        .finally(() => {
          m.liveBusy = false;
        });
    }, spec.everyMs);
  }

  private stopLiveness(m: Member): void {
    clearInterval(m.liveTimer);
    m.liveTimer = undefined;
  }

  // -------------------------------------------------------------------------------------------
  // The remedy loop

  private kick(): void {
    if (this.busy || this.shuttingDown || this.operatorPending) return;
    void this.remedyLoop().catch((err: unknown) => {
      // A bug: crash, and let whatever runs the watchdog restart it (it will adopt).
      this.log.fatal({ err }, 'remedy loop failed');
      setImmediate(() => {
        throw err;
      });
    });
  }

  private down(): Member[] {
    return this.members.filter((m) => m.state === 'failed' || m.state === 'stopped');
  }

  private async remedyLoop(): Promise<void> {
    assert.ok(!this.busy, 'a second remedy loop');
    this.busy = true;
    try {
      while (!this.shuttingDown && !this.operatorPending) {
        const down = this.down();
        if (down.length === 0) break;
        const incident = this.ensureIncident();
        if (incident.held) {
          for (const m of down) this.holdMember(m, incident, 'the incident is on hold');
          break;
        }
        const budgetExceeded = this.budgetExceeded(down);
        const repeat = down.some((m) => incident.restarted.has(m.name));
        const decision = decide(this.policy, {
          attempts: incident.attempts.length,
          rungIndex: incident.rungIndex,
          attemptsAtRung: incident.attemptsAtRung,
          repeat,
          retrying: incident.retrying,
          budgetExceeded,
        });
        let rung: Remedy;
        let rungIndex: number;
        const ctx = { incident: incident.id, rung: null };
        if (decision.kind === 'exhausted') {
          if (!incident.retrying) {
            if (decision.notify) {
              this.write({ ...ctx, event: 'escalate', rung: 'notify', cause: decision.reason });
              this.sendAlert(incident, decision.reason, decision.then);
            }
            if (decision.then === 'hold' || decision.retryRung === null) {
              incident.held = true;
              for (const m of down) this.holdMember(m, incident, decision.reason);
              break;
            }
            incident.retrying = true;
            this.write({ ...ctx, event: 'escalate', rung: decision.retryRung, cause: `${decision.reason}; retrying ${decision.retryRung} with backoff` });
          }
          rung = decision.retryRung!;
          rungIndex = decision.retryRungIndex;
        } else {
          rung = decision.rung;
          rungIndex = decision.rungIndex;
          if (decision.escalated) {
            const last = incident.attempts[incident.attempts.length - 1]!;
            this.write({ ...ctx, event: 'escalate', rung, cause: `${last.rung} did not hold: ${down.map((m) => `${m.name} ${m.lastCause ?? 'down'}`).join(', ')}` });
          }
        }
        if (decision.delayMs > 0 && !(await this.sleep(decision.delayMs))) break;
        if (incident.attempts.length > 0 && rungIndex === incident.rungIndex) {
          if (repeat) incident.attemptsAtRung += 1;
        } else {
          incident.rungIndex = rungIndex;
          incident.attemptsAtRung = 1;
        }
        this.countAttempt(rung, this.down());
        const atMs = Date.now();
        const outcome = await this.applyRung(rung, incident);
        incident.attempts.push({ rung, atMs, outcome });
        if (incident.attempts.length > limits.incidentAttemptsKeptMax) incident.attempts.splice(1, 1);
        this.checkNow(); // check again (step 207): anything down goes round the loop once more
      }
    } finally {
      this.setIdle();
    }
    this.armStableTimer();
  }

  private budgetExceeded(down: Member[]): string | null {
    const nowMs = Date.now();
    const app = this.config.budget;
    if (app && this.appWindow && this.appWindow.count(nowMs) + 1 > app.restarts) {
      return `application: ${app.restarts} restarts in ${app.windowSeconds} s`;
    }
    for (const m of down) {
      const b = m.spec.budget;
      if (b && m.failureWindow && m.failureWindow.count(nowMs) + 1 > b.restarts) return `${m.name}: ${b.restarts} restarts in ${b.windowSeconds} s`;
    }
    return null;
  }

  private countAttempt(rung: Remedy, down: Member[]): void {
    const nowMs = Date.now();
    this.rungCounters[rung] += 1;
    this.appWindow?.record(nowMs);
    for (const m of down) m.failureWindow?.record(nowMs);
  }

  private holdMember(m: Member, incident: Incident, cause: string): void {
    if (m.state === 'held') return;
    m.state = 'held';
    this.write({ event: 'hold', process: m.name, pid: m.handle && !m.handle.exited ? m.handle.pid : null, cause, incident: incident.id });
    this.onChange();
  }

  private armStableTimer(): void {
    const incident = this.incident;
    if (!incident || incident.held || this.shuttingDown || this.busy) return;
    if (this.down().length > 0) return;
    clearTimeout(this.stableTimer);
    const resolveIt = (): void => {
      if (this.incident !== incident || this.busy || this.down().length > 0) return;
      this.write({ event: 'resolved', incident: incident.id, cause: `all processes up for ${this.config.stableMs} ms after ${incident.attempts.length} remedies` });
      this.incident = undefined;
    };
    if (this.config.stableMs === 0) resolveIt();
    else this.stableTimer = setTimeout(resolveIt, this.config.stableMs);
  }

  private sendAlert(incident: Incident, reason: string, then: 'hold' | 'retry'): void {
    if (incident.notified) return;
    incident.notified = true;
    const iso = (ms: number): string => new Date(ms).toISOString();
    const { outcome } = this.notifier.alert(incident.id, (suppressedBefore) =>
      buildAlert(
        {
          incident: incident.id,
          application: this.config.name,
          openedAt: iso(incident.openedAtMs),
          reason,
          then,
          failures: incident.failures.map((f) => ({ process: f.process, cause: f.cause, time: iso(f.atMs) })),
          attempts: incident.attempts.map((a) => ({ rung: a.rung, time: iso(a.atMs), outcome: a.outcome })),
          journal: this.config.journal,
        },
        suppressedBefore,
      ),
    );
    void outcome.then((result) => {
      if (result.kind === 'rate-limited') {
        this.write({ event: 'notify', incident: incident.id, rung: 'notify', cause: `rate-limited: ${result.alertsInWindow} alerts already sent in the window (${this.notifier.rateLimitText})` });
      } else if (result.kind === 'sent') {
        for (const d of result.deliveries) {
          this.write({ event: 'notify', incident: incident.id, rung: 'notify', cause: d.ok ? 'sent' : `failed: ${d.error}`, detail: { channel: d.channel, elapsedMs: d.elapsedMs } });
        }
      }
    });
  }

  /** Sleeps unless shutdown or an operator restart interrupts; resolves false when interrupted. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolveSleep) => {
      if (this.abort.signal.aborted || this.operatorPending) return resolveSleep(false);
      const napper = new AbortController();
      this.napper = napper;
      const signal = AbortSignal.any([this.abort.signal, napper.signal]);
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (this.napper === napper) this.napper = undefined;
        resolveSleep(!signal.aborted);
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  // -------------------------------------------------------------------------------------------
  // The operator: `mirrorbox watchdog restart [NAME...]`

  /**
   * Ends a hold (systemctl reset-failed + restart): closes the open incident (journal
   * `resolve`), clears the restart budgets (the application's and each restarted process's),
   * and starts the processes again in configuration order, each waiting for readiness. No
   * names: every held or failed process. A remedy in progress finishes its step first (a
   * backoff wait is cut short); requests run one after the other. Throws MirrorboxError
   * UNKNOWN_PROCESS, WATCHDOG_STOPPING, or RESTART_FAILED with the cause when a start fails:
   * that failure opens a new incident, which the ladder takes from there.
   */
  operatorRestart(names: readonly string[], progress: (text: string) => void): Promise<OperatorRestart> {
    const unknown = names.filter((name) => !this.members.some((m) => m.name === name));
    if (unknown.length > 0) {
      const configured = this.members.map((m) => m.name).join(', ');
      return Promise.reject(new MirrorboxError('UNKNOWN_PROCESS', `no process named ${unknown.map((n) => `"${n}"`).join(', ')} (configured: ${configured})`));
    }
    const turn = this.operatorTurn.then(() => this.restartForOperator(new Set(names), progress));
    this.operatorTurn = turn.catch(() => undefined);
    return turn;
  }

  private async restartForOperator(names: Set<string>, progress: (text: string) => void): Promise<OperatorRestart> {
    this.operatorPending = true;
    this.napper?.abort();
    let holding = false;
    try {
      if (this.busy) progress('waiting for the remedy in progress to finish its step');
      await this.whenIdle();
      if (this.shuttingDown) throw watchdogStopping();
      this.busy = true;
      holding = true;
      const named = names.size > 0 ? this.members.filter((m) => names.has(m.name)) : this.members;
      const targets = named.filter((m) => m.state === 'held' || m.state === 'failed' || m.state === 'stopped');
      const result: OperatorRestart = {
        started: [],
        alreadyRunning: names.size > 0 ? named.filter((m) => !targets.includes(m)).map((m) => m.name) : [],
        resolved: null,
        held: [],
      };
      if (targets.length > 0 && this.incident) {
        const incident = this.incident;
        clearTimeout(this.stableTimer);
        this.incident = undefined;
        result.resolved = incident.id;
        this.write({
          event: 'resolve',
          incident: incident.id,
          cause: `resolved by the operator (watchdog restart ${targets.map((m) => m.name).join(' ')}) after ${incident.attempts.length} remedies${incident.held ? ', on hold' : ''}`,
          detail: { processes: targets.map((m) => m.name) },
        });
      }
      if (targets.length > 0) this.appWindow?.clear();
      const ctx: Context = { incident: null, rung: null };
      for (const m of targets) {
        if (this.shuttingDown) throw watchdogStopping();
        m.failureWindow?.clear();
        progress(`starting ${m.name}`);
        await this.clearMember(m, ctx);
        if (!(await this.startMember(m, ctx, operatorStartCause))) {
          if (this.shuttingDown) throw watchdogStopping();
          throw new MirrorboxError('RESTART_FAILED', `${m.name} did not start: ${m.lastCause ?? 'unknown cause'} (the ladder takes it from here; see the journal)`);
        }
        const h = m.handle!;
        const readyMs = Date.now() - h.startedAtMs;
        result.started.push({ name: m.name, pid: h.pid, readyMs });
        progress(`${m.name} ready (pid ${h.pid}) in ${readyMs} ms`);
      }
      result.held = this.members.filter((m) => m.state === 'held').map((m) => m.name);
      return result;
    } finally {
      this.operatorPending = false;
      if (holding) {
        this.setIdle();
        this.armStableTimer();
        this.kick();
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // The remedies

  /** Carries out one rung; returns "ok" or what went wrong (for the alert summary). */
  private async applyRung(rung: Remedy, incident: Incident): Promise<string> {
    const ctx: Context = { incident: incident.id, rung };
    const down = this.down();
    assert.ok(down.length > 0, 'a remedy with nothing down');
    const first = Math.min(...down.map((m) => m.index));
    const names = down.map((m) => m.name).join(', ');
    const n = this.members.length;
    if (rung === 'restart-failed') {
      this.write({ ...ctx, event: 'restart', cause: `not running: ${names}`, detail: { processes: down.map((m) => m.name) } });
      for (const m of this.members) {
        if (m.state !== 'failed' && m.state !== 'stopped') continue;
        await this.clearMember(m, ctx);
        incident.restarted.add(m.name);
        if (!(await this.startMember(m, ctx))) return `failed: ${m.name} ${m.lastCause ?? 'did not start'}`;
      }
      return 'ok';
    }
    const from = rung === 'full-restart' ? 0 : first;
    this.write({
      ...ctx,
      event: 'restart',
      cause: `not running: ${names}`,
      detail: { processes: down.map((m) => m.name), stop: this.members.slice(from).map((m) => m.name).reverse(), start: this.members.slice(from).map((m) => m.name) },
    });
    for (let i = n - 1; i >= from; i -= 1) await this.stopMember(this.members[i]!, rung, ctx);
    for (let i = from; i < n; i += 1) {
      const m = this.members[i]!;
      incident.restarted.add(m.name);
      if (!(await this.startMember(m, ctx))) return `failed: ${m.name} ${m.lastCause ?? 'did not start'}`;
    }
    return 'ok';
  }

  /** Before restarting a failed process: stop what is left of it (hung, stopped, or children). */
  private async clearMember(m: Member, ctx: Context): Promise<void> {
    const h = m.handle;
    if (!h) return;
    if (!h.exited || h.groupLeft().length > 0) await this.stopMember(m, h.exited ? 'processes left in its group' : 'failed', ctx);
  }

  /**
   * Spawns a process and waits for its readiness. Returns false (state failed, journaled) when
   * it cannot be started, exits, or is not ready within readyTimeoutMs.
   */
  private async startMember(m: Member, ctx: Context, cause = ctx.rung ?? 'start'): Promise<boolean> {
    assert.ok(m.state !== 'running' && m.state !== 'starting' && m.state !== 'stopping', `starting ${m.name} while ${m.state}`);
    m.generation += 1;
    const generation = m.generation;
    m.state = 'starting';
    m.goneSinceMs = null;
    let output: OutputLog;
    try {
      output = this.outputOf(m);
    } catch (err) {
      m.handle = undefined;
      this.markFailed(m, 'fail', messageOf(err));
      return false;
    }
    // What the ended instance left in the pipe is its output, not the new one's ready line.
    output.drainPending();
    const readyLine = m.ready !== undefined && 'stdout' in m.ready ? output.expectLine(m.ready.stdout) : undefined;
    // The log file is opened afresh alongside the start, off the restart's path (waitReady
    // fails the start if it cannot be).
    const logOpen = output.reopen();
    let handle: ProcHandle;
    const spare = m.spare;
    m.spare = undefined;
    if (spare?.usable) {
      handle = spare.release();
    } else {
      spare?.discard();
      try {
        handle = await spawnProcess({ command: m.spec.command, cwd: m.cwd, env: m.env, onSpawned: this.onSpawned }, output.childFd());
      } catch (err) {
        readyLine?.cancel(err);
        logOpen.catch(() => undefined);
        m.handle = undefined;
        this.markFailed(m, 'fail', messageOf(err));
        return false;
      }
    }
    m.handle = handle;
    m.starts += 1;
    if (m.starts > 1) m.restarts += 1;
    handle.onExit((info) => this.onExit(m, generation, info));
    this.write({ ...ctx, event: 'start', process: m.name, pid: handle.pid, cause, detail: { spare: spare !== undefined && handle.pid === spare.pid } });
    this.onChange();
    const failure = await this.waitReady(m, handle, readyLine, logOpen);
    if (generation !== m.generation) return false;
    if (failure !== null) {
      if (m.state === 'starting') this.markFailed(m, 'fail', failure);
      return false;
    }
    if (m.state !== 'starting') return false;
    m.state = 'running';
    this.write({ ...ctx, event: 'ready', process: m.name, pid: handle.pid, cause: m.ready?.describe ?? 'spawned', detail: { readyMs: Date.now() - handle.startedAtMs } });
    this.startLiveness(m);
    this.onChange();
    this.prepareSpare(m);
    return true;
  }

  /** The member's output log, opened on first use; throws MirrorboxError OUTPUT_LOG. */
  private outputOf(m: Member): OutputLog {
    m.output ??= OutputLog.open({
      logDir: this.config.logDir,
      pipeDir: this.config.stateDir,
      name: m.name,
      bytesMax: this.config.outputRotate?.maxBytes,
      filesKept: this.config.outputRotate?.keep,
      onError: (err) => this.log.error({ process: m.name, err: err.message }, 'output log'),
    });
    return m.output;
  }

  /** Forks the next restart's spare, off the current path (after this tick). */
  private prepareSpare(m: Member): void {
    if (!m.spec.spare) return;
    setImmediate(() => {
      if (m.spare || this.shuttingDown || m.state !== 'running') return;
      let outputFd: number;
      try {
        outputFd = this.outputOf(m).childFd();
      } catch (err) {
        // The next restart spawns directly (and fails, journaled, if the log is still unusable).
        this.log.error({ process: m.name, err: messageOf(err) }, 'no spare shell');
        return;
      }
      m.spare = Spare.prepare({ command: m.spec.command, cwd: m.cwd, env: m.env, onSpawned: this.onSpawned }, outputFd);
    });
  }

  private discardSpares(): void {
    for (const m of this.members) {
      m.spare?.discard();
      m.spare = undefined;
    }
  }

  /**
   * Resolves null once ready and its output log open, or the reason it never got there (an
   * output log that cannot be opened fails the start, at once).
   */
  private async waitReady(m: Member, handle: ProcHandle, readyLine: LineWait | undefined, logOpen: Promise<void>): Promise<string | null> {
    const logFailure = logOpen.then(
      () => null,
      (err: unknown) => messageOf(err),
    );
    const ready = m.ready;
    if (!ready) return handle.exited ? handle.exitInfo!.cause : await logFailure;
    const controller = new AbortController();
    void logFailure.then((failure) => {
      if (failure !== null) controller.abort(new Error(failure));
    });
    const timeoutMs = m.spec.readyTimeoutMs;
    const timer = setTimeout(() => controller.abort(new Error(`not ready within ${timeoutMs} ms (${ready.describe})`)), timeoutMs);
    const onShutdown = (): void => controller.abort(new Error('the watchdog is stopping'));
    this.abort.signal.addEventListener('abort', onShutdown, { once: true });
    void handle.ended.then((info) => controller.abort(new Error(info.cause)));
    try {
      if ('stdout' in ready) {
        assert.ok(readyLine, 'stdout readiness without a line wait');
        const cancel = (): void => readyLine.cancel(controller.signal.reason);
        if (controller.signal.aborted) cancel();
        controller.signal.addEventListener('abort', cancel, { once: true });
        await readyLine.line;
      } else {
        for (;;) {
          if (controller.signal.aborted) throw controller.signal.reason;
          try {
            await ready.probe(m.spec.ready?.timeoutMs ?? limits.probeTimeoutMsDefault);
            break;
          } catch {
            await abortableDelay(limits.readyPollMsDefault, controller.signal);
          }
        }
      }
      return handle.exited ? handle.exitInfo!.cause : await logFailure;
    } catch (err) {
      return handle.exited ? handle.exitInfo!.cause : messageOf(err);
    } finally {
      clearTimeout(timer);
      this.abort.signal.removeEventListener('abort', onShutdown);
    }
  }

  /** Controlled stop of one process and its group; journals stop (and kill when needed). */
  private async stopMember(m: Member, cause: string, ctx: Context): Promise<void> {
    const h = m.handle;
    this.stopLiveness(m);
    if (!h || (h.exited && h.groupLeft().length === 0)) {
      m.state = 'stopped';
      this.write({ ...ctx, event: 'stop', process: m.name, pid: h?.pid ?? null, cause: `${cause} (already exited)` });
      this.onChange();
      return;
    }
    m.state = 'stopping';
    const signal = m.spec.stop.signal as NodeJS.Signals;
    const timeoutMs = m.spec.stop.timeoutMs;
    this.write({ ...ctx, event: 'stop', process: m.name, pid: h.pid, cause, signal });
    this.onChange();
    const outcome = await stopGroup(h, signal, timeoutMs, () =>
      this.write({ ...ctx, event: 'kill', process: m.name, pid: h.pid, cause: `did not stop within ${timeoutMs} ms of ${signal}`, signal: 'SIGKILL' }),
    );
    if (outcome.leftover.length > 0) this.log.error({ process: m.name, pids: outcome.leftover }, 'processes survived SIGKILL');
    m.state = 'stopped';
    this.onChange();
  }

  // -------------------------------------------------------------------------------------------
  // Shutdown and status

  private setIdle(): void {
    this.busy = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }

  private whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * Stops watching and, unless `keepProcesses`, stops the application in reverse order.
   * `progress` hears about each step (the stop command prints them).
   */
  async shutdown(keepProcesses: boolean, progress: (text: string) => void = () => undefined): Promise<{ stopped: string[] }> {
    this.shuttingDown = true;
    this.abort.abort();
    clearInterval(this.checkTimer);
    clearTimeout(this.stableTimer);
    for (const m of this.members) this.stopLiveness(m);
    await this.whenIdle();
    this.discardSpares();
    this.busy = true;
    const stopped: string[] = [];
    if (keepProcesses) {
      // Let this process exit while they keep running (a child handle holds the event loop).
      for (const m of this.members) m.handle?.child?.unref();
    } else {
      for (let i = this.members.length - 1; i >= 0; i -= 1) {
        const m = this.members[i]!;
        const startedMs = Date.now();
        const pid = m.handle && !m.handle.exited ? m.handle.pid : null;
        progress(`stopping ${m.name}${pid === null ? ' (not running)' : ` (pid ${pid})`}`);
        await this.stopMember(m, 'watchdog stop', { incident: null, rung: null });
        stopped.push(m.name);
        progress(`stopped ${m.name} in ${Date.now() - startedMs} ms`);
      }
    }
    // What is in the pipes now reaches the logs; processes left running write on into the pipes.
    await Promise.all(this.members.map((m) => m.output?.close()));
    return { stopped };
  }

  status(): SupervisorStatus {
    const nowMs = Date.now();
    const inc = this.incident;
    return {
      application: this.config.name,
      incident: inc
        ? {
            id: inc.id,
            openedAt: new Date(inc.openedAtMs).toISOString(),
            attempts: inc.attempts.length,
            rung: inc.attempts.length > 0 ? inc.attempts[inc.attempts.length - 1]!.rung : null,
            held: inc.held,
            retrying: inc.retrying,
          }
        : null,
      rungCounters: { ...this.rungCounters },
      incidents: this.incidents,
      processes: this.members.map((m) => {
        const alive = m.handle !== undefined && !m.handle.exited && m.state !== 'stopped';
        return {
          name: m.name,
          pid: alive ? m.handle!.pid : null,
          state: m.state,
          adopted: m.handle?.adopted ?? false,
          startedAt: alive ? new Date(m.handle!.startedAtMs).toISOString() : null,
          uptimeMs: alive ? nowMs - m.handle!.startedAtMs : null,
          restarts: m.restarts,
          lastCause: m.lastCause,
        };
      }),
    };
  }

  /** What the state file records about each process. */
  records(): ProcessRecord[] {
    return this.members.map((m) => {
      const h = m.handle;
      const alive = h !== undefined && !h.exited;
      return {
        name: m.name,
        command: [...m.spec.command],
        pid: alive ? h.pid : null,
        pgid: alive ? h.pgid : null,
        startTicks: alive ? h.startTicks : null,
        state: m.state,
        startedAtMs: alive ? h.startedAtMs : null,
        restarts: m.restarts,
        lastCause: m.lastCause,
        adopted: h?.adopted ?? false,
        stop: { signal: m.spec.stop.signal, timeoutMs: m.spec.stop.timeoutMs },
      };
    });
  }

  private write(input: JournalInput): void {
    this.journal.append(input);
  }
}

/** The refusal of an operator request that comes while the watchdog stops. */
export function watchdogStopping(): MirrorboxError {
  return new MirrorboxError('WATCHDOG_STOPPING', 'the watchdog is stopping');
}

function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolveDelay, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolveDelay();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
