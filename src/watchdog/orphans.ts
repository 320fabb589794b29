/**
 * `watchdog stop` when no watchdog answers (it crashed, or was stopped with --keep-processes):
 * stop the processes its state file recorded, if they are still the same processes (pid and
 * start ticks), in reverse order, with the same controlled stop as the watchdog's.
 */
import { MirrorboxError } from '../util/errors.js';
import type { WatchdogConfig } from './config.js';
import { JournalWriter } from './journal.js';
import * as limits from './limits.js';
import { bootId, verdictOf } from './proc-stat.js';
import { adoptProcess, stopGroup } from './process-handle.js';
import { readStateFile, recordedWatchdogAlive, statePaths, writeStateFileSync } from './state.js';

export async function stopRecorded(stateDir: string, config: WatchdogConfig | undefined, progress: (text: string) => void): Promise<string[]> {
  const paths = statePaths(stateDir);
  const state = readStateFile(paths.state);
  if (!state) return [];
  if (state.watchdog.state === 'running' && recordedWatchdogAlive(state)) {
    throw new MirrorboxError('WATCHDOG_NOT_ANSWERING', `watchdog pid ${state.watchdog.pid} is alive but does not answer on ${paths.socket}`);
  }
  if (state.bootId !== bootId()) return [];
  const journal = config ? await JournalWriter.open(config.journal, { bytesMax: config.journalRotate?.maxBytes, filesKept: config.journalRotate?.keep }) : undefined;
  const stopped: string[] = [];
  try {
    for (const record of [...state.processes].reverse()) {
      if (record.pid === null || record.startTicks === null) continue;
      const { verdict } = verdictOf(record.pid, record.startTicks);
      if (verdict !== 'running' && verdict !== 'stopped') continue;
      const spec = config?.processes.find((p) => p.name === record.name)?.stop;
      const signal = (spec?.signal ?? 'SIGTERM') as NodeJS.Signals;
      const timeoutMs = spec?.timeoutMs ?? limits.stopTimeoutMsDefault;
      const handle = adoptProcess(record.pid, record.pgid ?? record.pid, record.startTicks, record.startedAtMs ?? Date.now());
      progress(`stopping ${record.name} (pid ${record.pid})`);
      journal?.append({ event: 'stop', process: record.name, pid: record.pid, cause: 'watchdog stop (no watchdog running)', signal });
      const outcome = await stopGroup(handle, signal, timeoutMs, () =>
        journal?.append({ event: 'kill', process: record.name, pid: record.pid, cause: `did not stop within ${timeoutMs} ms of ${signal}`, signal: 'SIGKILL' }),
      );
      progress(`stopped ${record.name} in ${outcome.elapsedMs} ms${outcome.killed ? ' (SIGKILL)' : ''}`);
      record.state = 'stopped';
      record.pid = null;
      record.pgid = null;
      record.startTicks = null;
      stopped.push(record.name);
    }
  } finally {
    await journal?.close();
  }
  state.watchdog.state = 'stopped';
  state.updatedAt = new Date().toISOString();
  writeStateFileSync(paths.state, state);
  return stopped;
}
