/**
 * Emergency notification (the patent's step 211): one alert per incident, fanned out to every
 * configured channel at once. Repeats for the same incident are dropped (de-duplication), and
 * alerts for new incidents beyond `rateLimit` per window are suppressed and counted; the next
 * alert that goes out says how many were suppressed.
 *
 * | situation                                   | what happens                                  |
 * |---------------------------------------------|-----------------------------------------------|
 * | first alert of an incident, under the limit | sent on every channel; one journal `notify`    |
 * |                                             | line per channel (cause "sent" or the error)  |
 * | same incident again                         | nothing sent, nothing journaled (dedupe)      |
 * | new incident, over the rate limit           | nothing sent; journal `notify` cause           |
 * |                                             | "rate-limited"; counted for the next alert    |
 * | a channel fails (server down, timeout)      | journal `notify` with the error; the others    |
 * |                                             | still go out; no retry storm                  |
 */
import type { NotifyConfig } from '../config.js';
import { SlidingWindow } from '../ladder.js';
import * as limits from '../limits.js';
import { messageOf } from '../../util/errors.js';
import type { Alert } from './alert.js';
import { sendEmail } from './email.js';
import { sendWebhook } from './webhook.js';
import { sendSyslog } from './syslog.js';
import { sendBuzzer } from './buzzer.js';

export type Channel = 'email' | 'webhook' | 'syslog' | 'buzzer';

export interface Delivery {
  channel: Channel;
  ok: boolean;
  error?: string;
  elapsedMs: number;
}

export type AlertOutcome =
  | { kind: 'sent'; deliveries: Delivery[] }
  | { kind: 'duplicate' }
  | { kind: 'rate-limited'; alertsInWindow: number };

/** Incident ids remembered for de-duplication (oldest forgotten first). */
const incidentsRememberedMax = 1024;

export class Notifier {
  private readonly config: NotifyConfig;
  private readonly seen = new Set<string>();
  private readonly window: SlidingWindow;
  private readonly alertsMax: number;
  private readonly windowSeconds: number;
  private suppressed = 0;
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(config: NotifyConfig | undefined) {
    this.config = config ?? {};
    this.alertsMax = this.config.rateLimit?.alerts ?? limits.alertsPerWindowDefault;
    this.windowSeconds = this.config.rateLimit?.perSeconds ?? limits.alertWindowSecondsDefault;
    this.window = new SlidingWindow(this.windowSeconds * 1000);
  }

  /**
   * Decides whether this incident's alert goes out (dedupe, rate limit) and, if so, starts the
   * deliveries; `build` makes the alert (told how many earlier alerts were suppressed).
   */
  alert(incident: string, build: (suppressedBefore: number) => Alert): { outcome: Promise<AlertOutcome>; alert?: Alert } {
    if (this.seen.has(incident)) return { outcome: Promise.resolve({ kind: 'duplicate' }) };
    this.remember(incident);
    const nowMs = Date.now();
    const inWindow = this.window.count(nowMs);
    if (inWindow >= this.alertsMax) {
      this.suppressed += 1;
      return { outcome: Promise.resolve({ kind: 'rate-limited', alertsInWindow: inWindow }) };
    }
    this.window.record(nowMs);
    const alert = build(this.suppressed);
    this.suppressed = 0;
    const outcome = this.deliver(alert).then((deliveries) => ({ kind: 'sent', deliveries }) as AlertOutcome);
    this.inFlight.add(outcome);
    void outcome.finally(() => this.inFlight.delete(outcome));
    return { outcome, alert };
  }

  /** Resolves when every delivery started so far has finished (for a clean shutdown). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  get rateLimitText(): string {
    return `${this.alertsMax} alerts per ${this.windowSeconds} s`;
  }

  private remember(incident: string): void {
    this.seen.add(incident);
    if (this.seen.size > incidentsRememberedMax) this.seen.delete(this.seen.values().next().value!);
  }

  private async deliver(alert: Alert): Promise<Delivery[]> {
    const timeoutMs = this.config.timeoutMs ?? limits.notifyTimeoutMsDefault;
    const c = this.config;
    const jobs: [Channel, () => Promise<void>][] = [];
    if (c.email) jobs.push(['email', () => sendEmail(c.email!, alert, timeoutMs)]);
    if (c.webhook) jobs.push(['webhook', () => sendWebhook(c.webhook!, alert, timeoutMs)]);
    const syslog = c.syslog;
    if (syslog) jobs.push(['syslog', () => sendSyslog(syslog, alert, timeoutMs)]);
    if (c.buzzer) jobs.push(['buzzer', () => sendBuzzer(c.buzzer!)]);
    return Promise.all(
      jobs.map(async ([channel, send]): Promise<Delivery> => {
        const startedMs = Date.now();
        try {
          await send();
          return { channel, ok: true, elapsedMs: Date.now() - startedMs };
        } catch (err) {
          return { channel, ok: false, error: messageOf(err), elapsedMs: Date.now() - startedMs };
        }
      }),
    );
  }
}
