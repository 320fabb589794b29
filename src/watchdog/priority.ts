/**
 * The watchdog's own CPU priority. A watchdog that waits for the CPU behind the work it guards
 * notices and restarts late (measured here on a 2-core machine shared with compilers: kill →
 * detected p99 went from 1.4 ms to 36 ms). With `nice: -10` in the config the watchdog's main
 * thread (which handles exit events, spawns and readiness) runs ahead of ordinary work; the
 * processes it starts are put back to the nice value the watchdog had before, so raising the
 * watchdog does not change the application's own scheduling.
 */
import { getPriority, setPriority } from 'node:os';
import { MirrorboxError, hasCode, messageOf } from '../util/errors.js';

export class Priority {
  /** The nice value the watchdog started with (and its children get). */
  readonly baseNice: number;
  readonly nice: number;

  constructor(nice: number | undefined) {
    this.baseNice = getPriority(0);
    this.nice = nice ?? this.baseNice;
    if (this.nice === this.baseNice) return;
    try {
      setPriority(0, this.nice);
    } catch (err) {
      const why = hasCode(err, 'EACCES') || hasCode(err, 'EPERM') ? 'not permitted (a negative nice needs root or CAP_SYS_NICE)' : messageOf(err);
      throw new MirrorboxError('WATCHDOG_NICE', `cannot set the watchdog's nice to ${this.nice}: ${why}`, { cause: err });
    }
  }

  /** Puts a process the watchdog started back to the base nice value. */
  resetChild(pid: number): void {
    if (this.nice === this.baseNice) return;
    try {
      setPriority(pid, this.baseNice);
    } catch {
      // it exited already: nothing to reset
    }
  }
}
