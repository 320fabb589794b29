import { Command, Flags } from '@oclif/core';
import { hasCode } from '../../../util/errors.js';
import { verdictOf } from '../../../watchdog/proc-stat.js';
import { readStateFile, statePaths } from '../../../watchdog/state.js';
import { requestStatus, type WatchdogStatus } from '../../../watchdog/watchdog.js';
import { configFlags, formatDuration, formatTable, locate } from '../../watchdog-common.js';

/** Exit status when no watchdog is running (as LSB init scripts' "status" uses 3). */
const exitNotRunning = 3;

export default class WatchdogStatusCommand extends Command {
  static override summary = 'Show the guarded processes: name, pid, state, uptime, restarts, last cause.';

  static override description = `Asks the running watchdog over its control socket (<stateDir>/watchdog.sock). When no
watchdog answers, shows what its state file last recorded, checked against /proc, and exits 3.`;

  static override examples = [
    { description: 'Table for people', command: '<%= config.bin %> watchdog status -c appliance/watchdog.yaml' },
    { description: 'JSON document for scripts', command: '<%= config.bin %> watchdog status -c appliance/watchdog.yaml --json' },
  ];

  static override flags = {
    ...configFlags,
    json: Flags.boolean({ description: 'print a JSON document instead of a table' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(WatchdogStatusCommand);
    const { stateDir } = locate(flags);
    let status: WatchdogStatus;
    try {
      status = await requestStatus(stateDir);
    } catch (err) {
      if (hasCode(err, 'WATCHDOG_NOT_RUNNING')) return this.notRunning(stateDir, flags.json);
      throw err;
    }
    if (flags.json) {
      this.log(JSON.stringify({ running: true, ...status }, null, 2));
      return;
    }
    const s = status.supervisor;
    const inc = s.incident;
    this.log(`watchdog pid ${status.watchdog.pid}, up ${formatDuration(Date.now() - Date.parse(status.watchdog.startedAt))}, ladder ${status.watchdog.ladder.join(' → ')}`);
    this.log(inc ? `incident ${inc.id}: ${inc.attempts} remedies, last ${inc.rung ?? '-'}${inc.held ? ', HOLDING' : inc.retrying ? ', retrying' : ''}` : 'no open incident');
    this.log('');
    this.log(
      formatTable(
        ['NAME', 'PID', 'STATE', 'UPTIME', 'RESTARTS', 'LAST CAUSE'],
        s.processes.map((p) => [p.name, p.pid === null ? '-' : String(p.pid), p.adopted ? `${p.state} (adopted)` : p.state, formatDuration(p.uptimeMs), String(p.restarts), p.lastCause ?? '-']),
      ),
    );
  }

  private notRunning(stateDir: string, json: boolean): never {
    const recorded = readStateFile(statePaths(stateDir).state);
    const processes = (recorded?.processes ?? []).map((r) => ({
      name: r.name,
      pid: r.pid,
      recordedState: r.state,
      alive: r.pid !== null && r.startTicks !== null && verdictOf(r.pid, r.startTicks).verdict === 'running',
      restarts: r.restarts,
      lastCause: r.lastCause,
    }));
    if (json) {
      this.log(JSON.stringify({ running: false, stateDir, lastWatchdog: recorded?.watchdog ?? null, processes }, null, 2));
    } else {
      this.logToStderr(`watchdog not running (state folder ${stateDir}${recorded ? `; last watchdog pid ${recorded.watchdog.pid}, ${recorded.watchdog.state}` : ''})`);
      if (processes.length > 0) {
        this.log(
          formatTable(
            ['NAME', 'PID', 'RECORDED', 'ALIVE', 'RESTARTS', 'LAST CAUSE'],
            processes.map((p) => [p.name, p.pid === null ? '-' : String(p.pid), p.recordedState, p.alive ? 'yes (unsupervised)' : 'no', String(p.restarts), p.lastCause ?? '-']),
          ),
        );
      }
    }
    this.exit(exitNotRunning);
  }
}
