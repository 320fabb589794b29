import { Command, Flags } from '@oclif/core';
import { hasCode } from '../../../util/errors.js';
import { stopAllTimeoutMsDefault, timerMsMax } from '../../../watchdog/limits.js';
import { stopRecorded } from '../../../watchdog/orphans.js';
import { requestStop } from '../../../watchdog/watchdog.js';
import { configFlags, locate } from '../../watchdog-common.js';

export default class WatchdogStop extends Command {
  static override summary = 'Stop the application in reverse order, then the watchdog.';

  static override description = `Asks the running watchdog (over <stateDir>/watchdog.sock) to stop every process in the
reverse of the start order (stop signal, stop.timeoutMs, then SIGKILL to the process group) and
to exit; prints each step. With --keep-processes only the watchdog exits and the processes keep
running, for the next \`watchdog run\` to adopt (e.g. to upgrade the watchdog). When no watchdog
answers, stops the processes its state file recorded, if they are still running.`;

  static override examples = [
    { description: 'Stop everything', command: '<%= config.bin %> watchdog stop -c appliance/watchdog.yaml' },
    { description: 'Stop only the watchdog; the next one adopts the processes', command: '<%= config.bin %> watchdog stop -c appliance/watchdog.yaml --keep-processes' },
  ];

  static override flags = {
    ...configFlags,
    'keep-processes': Flags.boolean({ description: 'leave the processes running for the next watchdog to adopt' }),
    'timeout-ms': Flags.integer({ min: 1, max: timerMsMax, description: 'how long to wait for the whole stop', default: stopAllTimeoutMsDefault }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(WatchdogStop);
    const located = locate(flags);
    try {
      const result = await requestStop(located.stateDir, flags['keep-processes'], (text) => this.log(text), flags['timeout-ms']);
      this.log(flags['keep-processes'] ? 'watchdog stopped; processes left running' : `stopped ${result.stopped.join(', ') || 'nothing'}; watchdog stopped`);
    } catch (err) {
      if (!hasCode(err, 'WATCHDOG_NOT_RUNNING')) throw err;
      this.logToStderr('no watchdog answers; stopping the processes its state file recorded');
      const stopped = await stopRecorded(located.stateDir, located.config, (text) => this.log(text));
      this.log(stopped.length > 0 ? `stopped ${stopped.join(', ')}` : 'nothing was running');
    }
  }
}
