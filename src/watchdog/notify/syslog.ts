/**
 * Alert to syslog through util-linux `logger` (RFC 5424, priority <facility>.crit):
 * - `syslog: true`           → the local syslog socket /dev/log
 * - `syslog: { socket: P }`  → another unix socket
 * - `syslog: { udp: "h:p" }` → a remote collector over UDP (RFC 5426)
 * Node cannot send unix datagrams itself; `logger` is the well-kept tool for exactly this.
 */
import { execFile } from 'node:child_process';
import { MirrorboxError } from '../../util/errors.js';
import { splitHostPort } from '../probes.js';
import { alertLine, type Alert } from './alert.js';

export type SyslogChannel = true | { socket?: string | undefined; udp?: string | undefined; facility?: string | undefined };

export const syslogSocketDefault = '/dev/log';
export const syslogTag = 'mirrorbox-watchdog';

export function loggerArgs(channel: SyslogChannel, alert: Alert): string[] {
  const facility = channel === true ? 'daemon' : (channel.facility ?? 'daemon');
  const args = ['--rfc5424', '-p', `${facility}.crit`, '-t', syslogTag, '--msgid', 'ALERT', '--id', String(process.pid)];
  if (channel !== true && channel.udp !== undefined) {
    const { host, port } = splitHostPort(channel.udp);
    args.push('-d', '-n', host, '-P', String(port));
  } else {
    args.push('-u', channel === true ? syslogSocketDefault : (channel.socket ?? syslogSocketDefault), '--socket-errors=on');
  }
  args.push('--', alertLine(alert));
  return args;
}

export function sendSyslog(channel: SyslogChannel, alert: Alert, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('logger', loggerArgs(channel, alert), { timeout: timeoutMs }, (err, _stdout, stderr) => {
      if (err) reject(new MirrorboxError('SYSLOG_FAILED', `logger: ${(stderr || err.message).trim()}`, { cause: err }));
      else resolve();
    });
  });
}
