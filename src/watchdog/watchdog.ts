/**
 * One watchdog process: the journal, the supervisor, the state file, the control socket and
 * (optionally) the hardware watchdog, put together. `mirrorbox watchdog run` is a thin shell
 * around Watchdog.start().
 */
import type { Logger } from 'pino';
import { MirrorboxError, messageOf } from '../util/errors.js';
import type { WatchdogConfig } from './config.js';
import { checkSocketPath, controlRequest, controlVersion, startControlServer, type ControlMessage, type ControlServer, type ControlRequest } from './control.js';
import { HardwareWatchdog } from './hardware-watchdog.js';
import { JournalWriter } from './journal.js';
import * as limits from './limits.js';
import { Notifier } from './notify/notifier.js';
import { bootId, selfStartTicks } from './proc-stat.js';
import { makeStateDir, readStateFile, recordedWatchdogAlive, statePaths, StateWriter, stateVersion, type StateFile } from './state.js';
import { Supervisor, watchdogStopping, type OperatorRestart, type SupervisorStatus } from './supervisor.js';
import { Priority } from './priority.js';

export interface WatchdogStatus {
  watchdog: {
    pid: number;
    startedAt: string;
    config: string;
    journal: string;
    socket: string;
    stateFile: string;
    checkIntervalMs: number;
    ladder: string[];
    nice: number;
    hardwareFeeds: number | null;
  };
  supervisor: SupervisorStatus;
}

export class Watchdog {
  readonly config: WatchdogConfig;
  readonly journal: JournalWriter;
  readonly supervisor: Supervisor;
  private readonly stateWriter: StateWriter;
  private readonly notifier: Notifier;
  private readonly paths: { state: string; socket: string };
  private readonly startedAtMs = Date.now();
  private readonly startTicks = selfStartTicks();
  private server: ControlServer | undefined;
  private hardware: HardwareWatchdog | undefined;
  private stopping: Promise<{ stopped: string[] }> | undefined;
  private watchdogState: 'running' | 'stopped' | 'detached' = 'running';
  private startedUp = false;
  private readonly previous: StateFile | undefined;
  private resolveDone!: () => void;
  /** Resolves once the watchdog has stopped (after `stop`, a signal, or a control request). */
  readonly done: Promise<void> = new Promise((r) => (this.resolveDone = r));

  private readonly log: Logger;

  private readonly priority: Priority;

  private constructor(config: WatchdogConfig, journal: JournalWriter, previous: StateFile | undefined, log: Logger, priority: Priority) {
    this.log = log;
    this.priority = priority;
    this.config = config;
    this.journal = journal;
    this.previous = previous;
    this.paths = statePaths(config.stateDir);
    this.notifier = new Notifier(config.notify);
    this.supervisor = new Supervisor({
      config,
      journal,
      notifier: this.notifier,
      log,
      onChange: () => this.stateWriter.schedule(),
      onSpawned: (pid) => this.priority.resetChild(pid),
    });
    this.stateWriter = new StateWriter(this.paths.state, () => this.snapshot());
  }

  /**
   * Starts a watchdog for `config`: refuses when another one runs for the same stateDir, then
   * adopts or starts every process. Resolves once the application is up (or in remedy).
   */
  static async start(config: WatchdogConfig, log: Logger, beforeStart: (w: Watchdog) => void = () => undefined): Promise<Watchdog> {
    const paths = statePaths(config.stateDir);
    checkSocketPath(paths.socket);
    const openMode = makeStateDir(config.stateDir);
    if (openMode !== undefined) {
      log.warn({ stateDir: config.stateDir, mode: openMode.toString(8) }, 'the state folder lets other users in; the control socket itself is 0600');
    }
    let previous: StateFile | undefined;
    try {
      previous = readStateFile(paths.state);
    } catch (err) {
      log.warn({ err: messageOf(err) }, 'ignoring a damaged state file: nothing will be adopted');
    }
    if (previous && previous.watchdog.state === 'running' && recordedWatchdogAlive(previous) && previous.watchdog.pid !== process.pid) {
      throw new MirrorboxError('WATCHDOG_RUNNING', `a watchdog (pid ${previous.watchdog.pid}) already runs with state in ${config.stateDir}`);
    }
    const priority = new Priority(config.nice);
    const journal = await JournalWriter.open(config.journal, { bytesMax: config.journalRotate?.maxBytes, filesKept: config.journalRotate?.keep });
    const watchdog = new Watchdog(config, journal, previous, log, priority);
    // A failing disk must not stop the supervision: report it and keep going (writes are retried).
    journal.onError((err) => {
      if (err.code === 'JOURNAL_CLOSED') log.warn({ err: err.message }, 'journal closed at stop: later events are not journaled');
      else log.error({ err: err.message, dropped: journal.droppedEntries }, 'journal write failed; retrying');
    });
    watchdog.stateWriter.onError = (err) => log.error({ err: messageOf(err) }, 'state file write failed; retrying');
    beforeStart(watchdog);
    watchdog.server = await startControlServer(paths.socket, (request, progress) => watchdog.handle(request, progress));
    journal.append({ event: 'watchdog', cause: `started with ${config.file}`, detail: { processes: config.processes.map((p) => p.name) } });
    watchdog.stateWriter.writeNow();
    if (config.hardwareWatchdog) {
      watchdog.hardware = new HardwareWatchdog(config.hardwareWatchdog.device, config.hardwareWatchdog.everyMs);
      watchdog.hardware.start();
    }
    await watchdog.supervisor.startAll(previous);
    watchdog.startedUp = true;
    // "running" means: the journal and the state file hold everything so far.
    await watchdog.stateWriter.idle();
    watchdog.stateWriter.writeNow();
    // A journal that cannot be written is reported (and retried) but does not stop supervision.
    await journal.flush().catch(() => undefined);
    return watchdog;
  }

  status(): WatchdogStatus {
    return {
      watchdog: {
        pid: process.pid,
        startedAt: new Date(this.startedAtMs).toISOString(),
        config: this.config.file,
        journal: this.config.journal,
        socket: this.paths.socket,
        stateFile: this.paths.state,
        checkIntervalMs: this.config.checkIntervalMs,
        ladder: [...this.config.ladder],
        nice: this.priority.nice,
        hardwareFeeds: this.hardware ? this.hardware.feeds : null,
      },
      supervisor: this.supervisor.status(),
    };
  }

  /** Stops the watchdog (and, unless keepProcesses, the application in reverse order). */
  stop(keepProcesses = false, progress?: (text: string) => void): Promise<{ stopped: string[] }> {
    this.stopping ??= this.doStop(keepProcesses, progress);
    return this.stopping;
  }

  private async doStop(keepProcesses: boolean, progress?: (text: string) => void): Promise<{ stopped: string[] }> {
    const result = await this.supervisor.shutdown(keepProcesses, progress);
    this.watchdogState = keepProcesses ? 'detached' : 'stopped';
    this.journal.append({ event: 'watchdog', cause: keepProcesses ? 'stopped; processes left running for the next watchdog to adopt' : 'stopped with the application' });
    await this.notifier.settle();
    await this.stateWriter.idle();
    try {
      this.stateWriter.writeNow();
    } catch (err) {
      this.log.error({ err: messageOf(err) }, 'cannot write the state file at stop');
    }
    await this.journal.close();
    this.hardware?.stop();
    // After the stop reply is written (the handler's continuation runs first): connections
    // that sent nothing, or half a request, are cut rather than waited for.
    setImmediate(() => {
      void (this.server?.close() ?? Promise.resolve()).then(() => this.resolveDone());
    });
    return result;
  }

  private async handle(request: ControlRequest, progress: (text: string) => void): Promise<Record<string, unknown>> {
    if (request.cmd === 'status') return { status: this.status() };
    if (request.cmd === 'restart') {
      if (this.stopping) throw watchdogStopping();
      return { ...(await this.supervisor.operatorRestart(request.processes, progress)) };
    }
    const result = await this.stop(request.keepProcesses, progress);
    return { ...result, keptRunning: request.keepProcesses };
  }

  private snapshot(): StateFile {
    const records = this.supervisor.records();
    const previousByName = new Map((this.previous?.processes ?? []).map((r) => [r.name, r]));
    return {
      v: stateVersion,
      bootId: bootId(),
      updatedAt: new Date().toISOString(),
      watchdog: {
        pid: process.pid,
        startTicks: this.startTicks,
        startedAtMs: this.startedAtMs,
        config: this.config.file,
        journal: this.config.journal,
        journalRotate: {
          maxBytes: this.config.journalRotate?.maxBytes ?? limits.journalBytesMaxDefault,
          keep: this.config.journalRotate?.keep ?? limits.journalFilesKeptDefault,
        },
        socket: this.paths.socket,
        state: this.watchdogState,
      },
      // Until start-up has dealt with every process, keep what the last watchdog recorded
      // about the ones not reached yet: a crash now must not lose them.
      processes: records.map((r, i) => {
        if (this.startedUp || this.supervisor.members[i]!.handle !== undefined) return r;
        return previousByName.get(r.name) ?? r;
      }),
    };
  }
}

/** One request to the watchdog of `stateDir`; its refusal becomes a MirrorboxError with its code. */
async function ask(stateDir: string, request: ControlRequest, options: { timeoutMs?: number; onProgress?: (text: string) => void } = {}): Promise<ControlMessage> {
  const reply = await controlRequest(statePaths(stateDir).socket, request, options);
  if (!reply.ok) throw new MirrorboxError(reply.code ?? 'CONTROL_ERROR', reply.message ?? 'the watchdog refused');
  return reply;
}

/** Asks a running watchdog (found through the state folder) for its status. */
export async function requestStatus(stateDir: string): Promise<WatchdogStatus> {
  return (await ask(stateDir, { v: controlVersion, cmd: 'status' }))['status'] as WatchdogStatus;
}

/** Asks a running watchdog to stop; `onProgress` hears each step. */
export async function requestStop(stateDir: string, keepProcesses: boolean, onProgress: (text: string) => void, timeoutMs = limits.stopAllTimeoutMsDefault): Promise<{ stopped: string[] }> {
  const reply = await ask(stateDir, { v: controlVersion, cmd: 'stop', keepProcesses }, { onProgress, timeoutMs });
  return { stopped: (reply['stopped'] as string[]) ?? [] };
}

/**
 * Asks a running watchdog to end a hold and start `processes` (none: every held or failed one);
 * resolves once they are ready. `onProgress` hears each step.
 */
export async function requestRestart(stateDir: string, processes: readonly string[], onProgress: (text: string) => void, timeoutMs = limits.restartTimeoutMsDefault): Promise<OperatorRestart> {
  const reply = await ask(stateDir, { v: controlVersion, cmd: 'restart', processes: [...processes] }, { onProgress, timeoutMs });
  return {
    started: reply['started'] as OperatorRestart['started'],
    alreadyRunning: reply['alreadyRunning'] as string[],
    resolved: reply['resolved'] as string | null,
    held: reply['held'] as string[],
  };
}
