/**
 * The one alert sent per incident: what failed, what was tried, what the watchdog does now.
 * Every channel sends the same facts; `text` is the human summary, the rest is for machines.
 */
import { hostname } from 'node:os';

export interface AlertFailure {
  process: string;
  cause: string;
  time: string;
}

export interface AlertAttempt {
  rung: string;
  time: string;
  /** "ok", "failed: ...", or "failed again after N ms". */
  outcome: string;
}

export interface Alert {
  incident: string;
  application: string;
  host: string;
  openedAt: string;
  /** Why the ladder ended: "restart budget exceeded (...)" or "every rung was tried (...)". */
  reason: string;
  /** What the watchdog does from now on. */
  then: 'hold' | 'retry';
  failures: AlertFailure[];
  attempts: AlertAttempt[];
  journal: string;
  /** Alerts dropped by the rate limit since the last one that went out. */
  suppressedBefore: number;
  subject: string;
  text: string;
}

export function buildAlert(fields: Omit<Alert, 'host' | 'subject' | 'text' | 'suppressedBefore'>, suppressedBefore = 0): Alert {
  const host = hostname();
  const names = [...new Set(fields.failures.map((f) => f.process))];
  const thenText = fields.then === 'hold' ? 'holding: failed processes stay down until an operator acts' : 'retrying with backoff';
  const subject = `[mirrorbox watchdog] ${fields.application}@${host}: ${names.join(', ')} failed; ${fields.attempts.length} remedies tried; ${fields.then === 'hold' ? 'holding' : 'retrying'} (incident ${fields.incident})`;
  const lines = [
    `Application ${fields.application} on ${host} needs attention.`,
    '',
    `Incident:   ${fields.incident} (opened ${fields.openedAt})`,
    `Reason:     ${fields.reason}`,
    `Now:        ${thenText}`,
    '',
    'Failures:',
    ...fields.failures.map((f) => `  ${f.time}  ${f.process}: ${f.cause}`),
    '',
    'Remedies tried:',
    ...(fields.attempts.length === 0 ? ['  (none)'] : fields.attempts.map((a, i) => `  ${i + 1}. ${a.time}  ${a.rung}: ${a.outcome}`)),
    '',
    `Journal:    ${fields.journal} (mirrorbox watchdog journal --incident ${fields.incident})`,
  ];
  if (suppressedBefore > 0) lines.push(`Note:       ${suppressedBefore} earlier alert(s) were suppressed by the rate limit.`);
  return { ...fields, host, suppressedBefore, subject, text: lines.join('\n') + '\n' };
}

/** One line for syslog (which keeps one line per message). */
export function alertLine(alert: Alert): string {
  const causes = alert.failures.map((f) => `${f.process}: ${f.cause}`).join('; ');
  return `incident ${alert.incident}: ${alert.application} ${alert.reason}; ${alert.attempts.length} remedies tried; now ${alert.then}; failures: ${causes}`;
}
