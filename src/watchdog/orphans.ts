/**
 * `watchdog stop` when no watchdog answers (it crashed, or was stopped with --keep-processes):
 * stop the processes its state file recorded, if they are still the same processes (pid and
 * start ticks), in reverse order, with the same controlled stop as the watchdog's; then any
 * instance it started but did not record (found by startedByEnv), as a restarted watchdog would.
 */
import { resolve } from 'node:path';
import { MirrorboxError } from '../util/errors.js';
import type { WatchdogConfig } from './config.js';
import { JournalWriter } from './journal.js';
import * as limits from './limits.js';
import { bootId, sessionLeadersWith, verdictOf } from './proc-stat.js';
import { adoptProcess, isSpareArgv, startedByEnv, stopGroup, type ProcHandle } from './process-handle.js';
import { readStateFile, recordedWatchdogAlive, statePaths, writeStateFileSync } from './state.js';

export async function stopRecorded(stateDir: string, config: WatchdogConfig | undefined, progress: (text: string) => void): Promise<string[]> {
  const paths = statePaths(stateDir);
  const state = readStateFile(paths.state);
  if (!state) return [];
  if (state.watchdog.state === 'running' && recordedWatchdogAlive(state)) {
    throw new MirrorboxError('WATCHDOG_NOT_ANSWERING', `watchdog pid ${state.watchdog.pid} is alive but does not answer on ${paths.socket}`);
  }
  if (state.bootId !== bootId()) return [];
  // Without a config, the journal and each process's stop are the ones the state file recorded.
  const journal = config
    ? await JournalWriter.open(config.journal, { bytesMax: config.journalRotate?.maxBytes, filesKept: config.journalRotate?.keep })
    : await JournalWriter.open(state.watchdog.journal, { bytesMax: state.watchdog.journalRotate?.maxBytes, filesKept: state.watchdog.journalRotate?.keep });
  const stopped: string[] = [];
  const stopOne = async (name: string, handle: ProcHandle, cause: string): Promise<void> => {
    const spec = config ? config.processes.find((p) => p.name === name)?.stop : state.processes.find((r) => r.name === name)?.stop;
    const signal = (spec?.signal ?? 'SIGTERM') as NodeJS.Signals;
    const timeoutMs = spec?.timeoutMs ?? limits.stopTimeoutMsDefault;
    progress(`stopping ${name} (pid ${handle.pid})`);
    journal.append({ event: 'stop', process: name, pid: handle.pid, cause, signal });
    const outcome = await stopGroup(handle, signal, timeoutMs, () =>
      journal.append({ event: 'kill', process: name, pid: handle.pid, cause: `did not stop within ${timeoutMs} ms of ${signal}`, signal: 'SIGKILL' }),
    );
    progress(`stopped ${name} in ${outcome.elapsedMs} ms${outcome.killed ? ' (SIGKILL)' : ''}`);
    stopped.push(name);
  };
  try {
    for (const record of [...state.processes].reverse()) {
      if (record.pid === null || record.startTicks === null) continue;
      const { verdict } = verdictOf(record.pid, record.startTicks);
      if (verdict !== 'running' && verdict !== 'stopped') continue;
      const handle = adoptProcess(record.pid, record.pgid ?? record.pid, record.startTicks, record.startedAtMs ?? Date.now());
      await stopOne(record.name, handle, 'watchdog stop (no watchdog running)');
      record.state = 'stopped';
      record.pid = null;
      record.pgid = null;
      record.startTicks = null;
    }
    const processEntry = `${startedByEnv.process}=`;
    for (const p of sessionLeadersWith(`${startedByEnv.stateDir}=${resolve(stateDir)}`)) {
      if (isSpareArgv(p.argv)) continue; // exits by itself: its watchdog is gone
      const name = p.environ.find((e) => e.startsWith(processEntry))?.slice(processEntry.length) ?? '?';
      await stopOne(name, adoptProcess(p.pid, p.pid, p.startTicks, Date.now()), 'watchdog stop (no watchdog running; not in the state file)');
    }
  } finally {
    await journal.close();
  }
  state.watchdog.state = 'stopped';
  state.updatedAt = new Date().toISOString();
  writeStateFileSync(paths.state, state);
  return stopped;
}
