/**
 * Emergency notifications delivered to real servers the test starts: SMTP (smtp-server), HTTP,
 * syslog over UDP and over a unix datagram socket, and a buzzer device. (This machine has no
 * /dev/log, so the syslog tests point the watchdog at collectors they start themselves; a tty
 * cannot be created without a native module, so the buzzer writes to a regular file and a FIFO.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { requestStatus } from '../src/watchdog/watchdog.js';
import { Notifier } from '../src/watchdog/notify/notifier.js';
import { buildAlert, type Alert } from '../src/watchdog/notify/alert.js';
import { sendSyslog } from '../src/watchdog/notify/syslog.js';
import { sendBuzzer } from '../src/watchdog/notify/buzzer.js';
import type { JournalEntry } from '../src/watchdog/journal.js';
import { freePort, serviceCommand, startWatchdog, waitForJournal, waitUntil, watchdogDir, writeConfig } from './helpers/watchdog.js';
import { startSmtp, startUdpSyslog, startUnixDgramSyslog, startWebhook } from './helpers/alert-sinks.js';

const bel = 0x07;

test('one alert per incident on every channel, none for repeats, rate-limited across incidents', async (t) => {
  const dir = watchdogDir(t);
  const smtp = await startSmtp(t);
  const hook = await startWebhook(t);
  const syslog = await startUdpSyslog(t);
  const buzzer = join(dir, 'buzzer');
  writeFileSync(buzzer, '');
  const crashFile = join(dir, 'crash');
  const port = await freePort();
  const config = writeConfig(
    dir,
    `
name: notifytest
journal: ./var/watchdog.jsonl
checkIntervalMs: 50
ladder: [restart-failed, notify]
onExhausted: retry
stableMs: 1200
backoff: { initialMs: 100, maxMs: 300 }
notify:
  email: { url: "${smtp.url}", from: "box@example.com", to: ["ops@example.com", "oncall@example.com"] }
  webhook: { url: "${hook.url}", headers: { x-token: "s3cret" } }
  syslog: { udp: "${syslog.address}", facility: daemon }
  buzzer: { device: "${buzzer}", beeps: 3 }
  rateLimit: { alerts: 2, perSeconds: 3600 }
processes:
  - name: b
    command: ${serviceCommand('b', '--port', String(port), '--crash-if-file', crashFile, '--crash-delay-ms', '200')}
    ready: { tcp: "127.0.0.1:${port}" }
`,
  );
  const journal = join(dir, 'var', 'watchdog.jsonl');
  const stateDir = join(dir, 'var');
  await startWatchdog(t, config, stateDir, journal);

  /**
   * Makes b crash-loop for at least `loopMs` and until the incident has reached the notify rung
   * (on a loaded machine a restart may take longer than the loop), then lets it recover; returns
   * the incident's entries.
   */
  const incident = async (loopMs: number): Promise<JournalEntry[]> => {
    const from = (await waitForJournal(journal, () => true)).length;
    writeFileSync(crashFile, '');
    process.kill((await requestStatus(stateDir)).supervisor.processes[0]!.pid!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, loopMs));
    await waitForJournal(journal, (es) => es.slice(from).some((e) => e.event === 'notify'), 15_000, 'incident reached notify');
    rmSync(crashFile);
    const entries = await waitForJournal(journal, (es) => es.slice(from).some((e) => e.event === 'resolved'), 15_000, 'incident resolved');
    const id = entries.slice(from).find((e) => e.incident !== null)!.incident!;
    return entries.filter((e) => e.incident === id);
  };

  // Incident 1: a crash loop of ~2 s, many restarts, one alert.
  const first = await incident(2000);
  const id1 = first[0]!.incident!;
  assert.ok(first.filter((e) => e.event === 'restart').length >= 4, 'kept retrying with backoff');
  const notes1 = first.filter((e) => e.event === 'notify');
  assert.deepEqual(notes1.map((e) => `${(e.detail as { channel: string }).channel}:${e.cause}`).sort(), ['buzzer:sent', 'email:sent', 'syslog:sent', 'webhook:sent']);
  await waitUntil(() => smtp.mails.length === 1 && hook.posts.length === 1 && syslog.messages.length === 1, 5000, 'first alert on every channel');

  const mail = smtp.mails[0]!;
  assert.equal(mail.from, 'box@example.com');
  assert.deepEqual(mail.to, ['ops@example.com', 'oncall@example.com']);
  assert.equal(mail.headers['x-mirrorbox-incident'], id1);
  assert.equal(mail.subject, `[mirrorbox watchdog] notifytest@${hostname()}: b failed; 1 remedies tried; retrying (incident ${id1})`);
  assert.match(mail.text, new RegExp(`Incident: +${id1} \\(opened `));
  assert.match(mail.text, /Reason: +every rung was tried \(1 attempts\)/);
  assert.match(mail.text, /Now: +retrying with backoff/);
  assert.match(mail.text, /b: killed by SIGKILL/);
  assert.match(mail.text, /b: exited with code 3/);
  assert.match(mail.text, /1\. \S+ +restart-failed: ok/);
  assert.match(mail.text, new RegExp(`Journal: +${journal.replace(/[/.]/g, '\\$&')}`));

  const post = hook.posts[0]!;
  assert.equal(post.headers['x-token'], 's3cret');
  assert.equal(post.headers['content-type'], 'application/json');
  const body = post.body as Alert & { type: string; v: number };
  assert.equal(body.type, 'mirrorbox.watchdog.alert');
  assert.equal(body.v, 1);
  assert.equal(body.incident, id1);
  assert.equal(body.application, 'notifytest');
  assert.equal(body.then, 'retry');
  assert.deepEqual(body.failures.map((f) => f.cause), ['killed by SIGKILL', 'exited with code 3']);
  assert.equal(body.text, mail.text.replace(/\r\n/g, '\n'));

  // RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG, with PRI = daemon(3)*8 + crit(2) = 26.
  const line = syslog.messages[0]!;
  assert.match(line, new RegExp(`^<26>1 \\S+ \\S+ mirrorbox-watchdog \\d+ ALERT .*incident ${id1}: notifytest every rung was tried \\(1 attempts\\); 1 remedies tried; now retry; failures: b: killed by SIGKILL; b: exited with code 3$`));
  assert.deepEqual([...readFileSync(buzzer)], [bel, bel, bel]);

  // Incident 2: a new incident, a new alert.
  const second = await incident(600);
  const id2 = second[0]!.incident!;
  assert.notEqual(id2, id1);
  await waitUntil(() => smtp.mails.length === 2 && hook.posts.length === 2 && syslog.messages.length === 2, 5000, 'second alert');
  assert.equal(smtp.mails[1]!.headers['x-mirrorbox-incident'], id2);
  assert.equal(readFileSync(buzzer).length, 6);

  // Incident 3: over the rate limit (2 per hour): journaled as suppressed, nothing sent.
  const third = await incident(600);
  const notes3 = third.filter((e) => e.event === 'notify');
  assert.equal(notes3.length, 1);
  assert.match(notes3[0]!.cause!, /^rate-limited: 2 alerts already sent in the window \(2 alerts per 3600 s\)$/);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(smtp.mails.length, 2);
  assert.equal(hook.posts.length, 2);
  assert.equal(syslog.messages.length, 2);
  assert.equal(readFileSync(buzzer).length, 6);
});

function sampleAlert(incident: string, suppressedBefore = 0): Alert {
  return buildAlert(
    {
      incident,
      application: 'unit',
      openedAt: '2024-05-01T12:00:00.000Z',
      reason: 'restart budget exceeded (application: 5 restarts in 60 s)',
      then: 'hold',
      failures: [{ process: 'store', cause: 'killed by SIGKILL', time: '2024-05-01T12:00:00.000Z' }],
      attempts: [{ rung: 'restart-failed', time: '2024-05-01T12:00:00.010Z', outcome: 'ok' }],
      journal: '/var/lib/mirrorbox/watchdog.jsonl',
    },
    suppressedBefore,
  );
}

test('syslog to a unix datagram socket (the /dev/log kind) through logger, RFC 5424, local0.crit', async (t) => {
  const dir = watchdogDir(t);
  const path = join(dir, 'log.sock');
  const sink = await startUnixDgramSyslog(t, path);
  await sendSyslog({ socket: path, facility: 'local0' }, sampleAlert('i-unix'), 5000);
  await waitUntil(() => sink.messages.length === 1, 5000, 'datagram');
  // local0 = 16: PRI = 16*8 + 2 = 130.
  assert.match(sink.messages[0]!, /^<130>1 \S+ \S+ mirrorbox-watchdog \d+ ALERT .*incident i-unix: unit restart budget exceeded \(application: 5 restarts in 60 s\); 1 remedies tried; now hold; failures: store: killed by SIGKILL\s*$/);
  // With no socket there (like /dev/log on this machine), the delivery fails with logger's reason.
  await assert.rejects(sendSyslog({ socket: join(dir, 'absent.sock') }, sampleAlert('i-none'), 5000), (err: Error & { code?: string }) => err.code === 'SYSLOG_FAILED');
});

test('Notifier: dedupe per incident, rate limit with a count of suppressed alerts, a failing channel does not stop the others', async (t) => {
  const dir = watchdogDir(t);
  const hook = await startWebhook(t);
  const fifo = join(dir, 'buzzer.fifo');
  execFileSync('mkfifo', [fifo]);
  // The FIFO has no reader: a non-blocking open fails at once (ENXIO) instead of hanging.
  const windowSeconds = 0.5;
  const notifier = new Notifier({ webhook: { url: hook.url }, buzzer: { device: fifo, beeps: 1 }, rateLimit: { alerts: 1, perSeconds: windowSeconds } });
  const first = notifier.alert('i1', (n) => sampleAlert('i1', n));
  const outcome = await first.outcome;
  assert.equal(outcome.kind, 'sent');
  assert.ok(outcome.kind === 'sent');
  const byChannel = Object.fromEntries(outcome.deliveries.map((d) => [d.channel, d]));
  assert.equal(byChannel['webhook']!.ok, true);
  assert.equal(byChannel['buzzer']!.ok, false);
  assert.match(byChannel['buzzer']!.error!, /ENXIO/);
  assert.equal((await notifier.alert('i1', (n) => sampleAlert('i1', n)).outcome).kind, 'duplicate');
  const limited = await notifier.alert('i2', (n) => sampleAlert('i2', n)).outcome;
  assert.deepEqual(limited, { kind: 'rate-limited', alertsInWindow: 1 });
  assert.equal(hook.posts.length, 1);
  // Once the window has passed, the next alert goes out and says how many were suppressed.
  await new Promise((r) => setTimeout(r, windowSeconds * 1000 + 100));
  assert.equal((await notifier.alert('i3', (n) => sampleAlert('i3', n)).outcome).kind, 'sent');
  assert.equal(hook.posts.length, 2);
  const third = hook.posts[1]!.body as Alert;
  assert.equal(third.suppressedBefore, 1);
  assert.match(third.text, /1 earlier alert\(s\) were suppressed by the rate limit/);
});

test('buzzer: BEL bytes appended to the device, never truncating it', async (t) => {
  const dir = watchdogDir(t);
  const device = join(dir, 'console');
  writeFileSync(device, 'boot log\n');
  await sendBuzzer({ device, beeps: 2 });
  assert.deepEqual([...readFileSync(device)].slice(-2), [bel, bel]);
  assert.equal(readFileSync(device, 'latin1').slice(0, 9), 'boot log\n');
});
