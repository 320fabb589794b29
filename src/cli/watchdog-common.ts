/**
 * What the `mirrorbox watchdog ...` commands share: how they find the watchdog (config file or
 * state folder), and how they print tables, durations and journal lines.
 */
import { existsSync } from 'node:fs';
import { Flags } from '@oclif/core';
import { MirrorboxError } from '../util/errors.js';
import { loadConfig, type WatchdogConfig } from '../watchdog/config.js';
import type { JournalEntry } from '../watchdog/journal.js';
import { journalFilesKeptDefault } from '../watchdog/limits.js';
import { readStateFile, statePaths } from '../watchdog/state.js';

export const configFlags = {
  config: Flags.string({
    char: 'c',
    description: 'the watchdog config file (default: $MIRRORBOX_WATCHDOG_CONFIG, ./watchdog.yaml or ./appliance/watchdog.yaml)',
  }),
  'state-dir': Flags.string({
    description: 'the folder holding watchdog.sock and watchdog.state.json (default: from the config); without --config, no config is read: the journal and stop signals come from its state file',
  }),
};

/** Config files tried, in order, when --config is not given. */
export const configCandidates = ['watchdog.yaml', 'appliance/watchdog.yaml'];

export interface Located {
  config: WatchdogConfig | undefined;
  stateDir: string;
  journal: string | undefined;
  /** How many rotated journal files the config keeps (journalRotate.keep), when it says. */
  journalFilesKept: number | undefined;
}

/**
 * Finds the config (and from it the state folder and journal) the way every command does.
 * `--state-dir` without `--config` names the watchdog by itself: no config is looked for (a
 * ./watchdog.yaml here may be another application's, or broken); what the commands need then
 * comes from the state file (see stateJournal).
 */
export function locate(flags: { config?: string | undefined; 'state-dir'?: string | undefined }): Located {
  const byStateDir = flags['state-dir'] !== undefined && flags.config === undefined;
  const file = byStateDir ? undefined : (flags.config ?? process.env['MIRRORBOX_WATCHDOG_CONFIG'] ?? configCandidates.find((c) => existsSync(c)));
  const config = file !== undefined ? loadConfig(file) : undefined;
  const stateDir = flags['state-dir'] ?? config?.stateDir;
  if (stateDir === undefined) {
    throw new MirrorboxError('WATCHDOG_CONFIG_NOT_FOUND', `no config given and none of ${configCandidates.join(', ')} exists here: pass --config FILE or --state-dir DIR`);
  }
  return { config, stateDir, journal: config?.journal, journalFilesKept: config?.journalRotate?.keep };
}

/**
 * The journal (path and rotated files kept) of a located watchdog: the config's, else the one
 * its state file records. Throws WATCHDOG_CONFIG_NOT_FOUND when neither names one, STATE_FILE
 * when the state file is damaged.
 */
export function locatedJournal(located: Located): { path: string; filesKept: number } {
  if (located.journal !== undefined) return { path: located.journal, filesKept: located.journalFilesKept ?? journalFilesKeptDefault };
  const state = readStateFile(statePaths(located.stateDir).state);
  if (!state) throw new MirrorboxError('WATCHDOG_CONFIG_NOT_FOUND', `no config given and no state file in ${located.stateDir}: pass --config FILE or --file JOURNAL`);
  return { path: state.watchdog.journal, filesKept: state.watchdog.journalRotate?.keep ?? journalFilesKeptDefault };
}

/** Plain text table with a header row; columns padded to their widest cell. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** 950 → "950ms", 61_000 → "1m1s", 90_061_000 → "1d1h1m". */
export function formatDuration(ms: number | null): string {
  if (ms === null) return '-';
  const secondMs = 1000;
  if (ms < secondMs) return `${Math.round(ms)}ms`;
  let s = Math.floor(ms / secondMs);
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return `${d}d${h}h${m}m`;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** One journal entry as a line for people (the run command prints these as they happen). */
export function formatEntry(e: JournalEntry): string {
  const time = e.time.slice(11, 23);
  const parts = [time, e.event.padEnd(8), e.process ?? '-'];
  if (e.pid !== null) parts.push(`pid=${e.pid}`);
  if (e.rung !== null) parts.push(`rung=${e.rung}`);
  if (e.incident !== null) parts.push(`incident=${e.incident}`);
  if (e.cause !== null) parts.push(`: ${e.cause}`);
  return parts.join(' ');
}

/** ISO 8601 date, or date-time (T or RFC 3339's space) to the minute or finer, with an optional zone. */
const isoSincePattern = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;
const sinceSpanPattern = /^(\d+)\s*(s|m|h|d)$/;

/**
 * Parses --since: an ISO 8601 date (00:00 UTC of that day) or date-time (with a zone, Z or
 * ±HH:MM; without one, local time), or a span back from now ("90s", "15m", "2h", "1d").
 * Anything else throws MirrorboxError BAD_SINCE (no guessing: Date.parse reads "90" as 1990).
 */
export function parseSince(text: string, nowMs = Date.now()): number {
  const trimmed = text.trim();
  const span = sinceSpanPattern.exec(trimmed);
  if (span) {
    const unitMs: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
    return nowMs - Number(span[1]) * unitMs[span[2]!]!;
  }
  const iso = isoSincePattern.exec(trimmed);
  const ms = iso && isoFieldsValid(iso) ? Date.parse(trimmed.replace(' ', 'T')) : Number.NaN;
  if (Number.isNaN(ms)) {
    throw new MirrorboxError('BAD_SINCE', `--since "${text}": expected an ISO 8601 date or time (2024-05-01, 2024-05-01T12:00:00Z, 2024-05-01T14:00+02:00) or a span back from now (90s, 15m, 2h, 1d)`);
  }
  return ms;
}

/** Month, day (in that month), hour, minute, second and zone within their ranges. */
function isoFieldsValid(m: RegExpExecArray): boolean {
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) return false;
  if (m[4] !== undefined && (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6] ?? 0) > 59)) return false;
  const zone = m[7];
  if (zone !== undefined && zone !== 'Z' && (Number(zone.slice(1, 3)) > 23 || Number(zone.slice(4, 6)) > 59)) return false;
  return true;
}
