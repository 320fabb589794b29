import { Args, Command, Flags } from '@oclif/core';
import { restartTimeoutMsDefault, timerMsMax } from '../../../watchdog/limits.js';
import { requestRestart } from '../../../watchdog/watchdog.js';
import { configFlags, locate } from '../../watchdog-common.js';

export default class WatchdogRestart extends Command {
  static override summary = 'End a hold: close the incident and start the held or failed processes again.';

  static override description = `When restarts exceed the budget and the ladder ends in "hold", the failed processes stay
down until an operator steps in (as \`systemctl reset-failed\` + \`systemctl restart\`, or
\`supervisorctl start\`). This asks the running watchdog (over <stateDir>/watchdog.sock) to close
the open incident (journal "resolve"), clear the restart budgets, and start the named processes
(no NAME: every held or failed one) in configuration order, each waiting for readiness. It
prints each step and returns once they are ready; if one fails to start, it exits with the cause
(code RESTART_FAILED) and the ladder handles that failure as a new incident. A named process
that is running already is left alone.`;

  static override examples = [
    { description: 'Start every held or failed process again', command: '<%= config.bin %> watchdog restart -c appliance/watchdog.yaml' },
    { description: 'Only the store', command: '<%= config.bin %> watchdog restart -c appliance/watchdog.yaml store' },
    { description: 'As JSON (started, alreadyRunning, resolved incident, still held)', command: '<%= config.bin %> watchdog restart -c appliance/watchdog.yaml --json' },
  ];

  static override strict = false;

  static override args = {
    name: Args.string({ description: 'process to start (repeatable; default: every held or failed one)' }),
  };

  static override flags = {
    ...configFlags,
    json: Flags.boolean({ description: 'print the result as a JSON document' }),
    'timeout-ms': Flags.integer({ min: 1, max: timerMsMax, description: 'how long to wait for the processes to be ready', default: restartTimeoutMsDefault }),
  };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(WatchdogRestart);
    const { stateDir } = locate(flags);
    const names = argv as string[];
    const result = await requestRestart(stateDir, names, (text) => {
      if (!flags.json) this.log(text);
    }, flags['timeout-ms']);
    if (flags.json) {
      this.log(JSON.stringify(result, null, 2));
      return;
    }
    if (result.resolved !== null) this.log(`incident ${result.resolved} resolved`);
    if (result.alreadyRunning.length > 0) this.log(`already running: ${result.alreadyRunning.join(', ')}`);
    this.log(result.started.length > 0 ? `restarted ${result.started.map((p) => p.name).join(', ')}` : 'nothing was held or failed');
    if (result.held.length > 0) this.log(`still held: ${result.held.join(', ')}`);
  }
}
