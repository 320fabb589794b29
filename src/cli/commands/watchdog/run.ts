import { Args, Command, Flags } from '@oclif/core';
import { createLogger } from '../../../util/log.js';
import { loadConfig } from '../../../watchdog/config.js';
import { Watchdog } from '../../../watchdog/watchdog.js';
import { formatEntry } from '../../watchdog-common.js';

export default class WatchdogRun extends Command {
  static override summary = 'Start an application from its config and guard it (exhibit C: the application process monitor).';

  static override description = `Starts the processes listed in CONFIG in order, each once the one before is ready, then
watches them: exit events, /proc every checkIntervalMs, liveness probes. Failures are remedied
by the configured ladder (restart-failed, partial-restart, full-restart, notify) and every step is
journaled. Processes still running from a previous watchdog (recorded in its state file) are
adopted, not started twice. Every journal event is printed as it happens; SIGTERM or SIGINT (or
\`mirrorbox watchdog stop\`) stops the application in reverse order and exits.`;

  static override examples = [
    { description: 'Guard the appliance daemons', command: '<%= config.bin %> watchdog run appliance/watchdog.yaml' },
    { description: 'Only check the config (file, line and field of every problem), start nothing', command: '<%= config.bin %> watchdog run appliance/watchdog.yaml --check' },
  ];

  static override args = {
    config: Args.string({ description: 'the YAML config file', required: true }),
  };

  static override flags = {
    check: Flags.boolean({ description: 'check the config and exit (0 when it is good)' }),
    quiet: Flags.boolean({ char: 'q', description: 'do not print journal events' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(WatchdogRun);
    const config = loadConfig(args.config);
    if (flags.check) {
      this.log(`${args.config}: good (${config.processes.length} processes: ${config.processes.map((p) => p.name).join(', ')}; ladder ${config.ladder.join(' → ')})`);
      return;
    }
    const log = createLogger('watchdog');
    // The watchdog outlives the terminal or pipe that started it (SIGHUP is ignored below): once
    // its stdout is gone (EIO from a hung-up terminal, EPIPE from a closed pipe) it stops
    // printing journal events, which are in the journal anyway, instead of dying of the write
    // error (oclif's own stdout handler rethrows everything but EPIPE).
    let printing = !flags.quiet;
    process.stdout.removeAllListeners('error');
    process.stdout.on('error', (err) => {
      if (printing) log.warn({ err: err.message }, 'stdout is gone: journal events are no longer printed');
      printing = false;
    });
    let watchdog: Watchdog | undefined;
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'stopping the application');
      if (watchdog) void watchdog.stop(false);
      else process.exit(1);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('SIGHUP', () => log.info('SIGHUP ignored (restart the watchdog to reload its config: running processes are adopted)'));
    const started = await Watchdog.start(config, log, (w) => {
      watchdog = w;
      w.journal.onAppend((e) => {
        if (printing) process.stdout.write(formatEntry(e) + '\n');
      });
    });
    watchdog = started;
    const s = started.status();
    const running = s.supervisor.processes.filter((p) => p.state === 'running').length;
    this.log(`watchdog running: ${running}/${s.supervisor.processes.length} processes up; control socket ${s.watchdog.socket}; journal ${s.watchdog.journal}`);
    await started.done;
    this.log('watchdog stopped');
    // Exit now: with --keep-processes the children live on and must not hold this process.
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
    process.exit(0);
  }
}
