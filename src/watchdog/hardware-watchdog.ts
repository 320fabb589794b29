/**
 * Optional hardware watchdog feeding (Linux watchdog API, /dev/watchdog): opening the device
 * arms it; every write resets its timer; if the watchdog process hangs or dies, the feeding
 * stops and the hardware reboots the box. A clean stop writes the magic character "V" before
 * closing, which disarms it (for drivers with the magic-close feature).
 */
import { closeSync, openSync, writeSync, constants as fsConstants } from 'node:fs';
import { MirrorboxError, messageOf } from '../util/errors.js';

/** Any byte but "V" feeds; "V" then close disarms. */
const feedByte = Buffer.from('.');
const magicClose = Buffer.from('V');

export class HardwareWatchdog {
  private fd: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  feeds = 0;

  constructor(
    readonly device: string,
    readonly everyMs: number,
  ) {}

  start(): void {
    try {
      this.fd = openSync(this.device, fsConstants.O_WRONLY | fsConstants.O_NOCTTY);
    } catch (err) {
      throw new MirrorboxError('HARDWARE_WATCHDOG', `cannot open ${this.device}: ${messageOf(err)}`, { cause: err });
    }
    this.feed();
    this.timer = setInterval(() => this.feed(), this.everyMs);
  }

  private feed(): void {
    if (this.fd === undefined) return;
    writeSync(this.fd, feedByte);
    this.feeds += 1;
  }

  /** Disarms (magic close) and closes the device. */
  stop(): void {
    clearInterval(this.timer);
    if (this.fd === undefined) return;
    try {
      writeSync(this.fd, magicClose);
    } finally {
      closeSync(this.fd);
      this.fd = undefined;
    }
  }
}
