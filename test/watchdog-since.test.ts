/**
 * `watchdog journal --since`: an ISO 8601 date or date-time, or a span back from now. Anything
 * else is refused with BAD_SINCE, not guessed at (Date.parse reads "90" as the year 1990).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { parseSince } from '../src/cli/watchdog-common.js';
import { JournalWriter } from '../src/watchdog/journal.js';
import { cliPath } from './helpers/paths.js';
import { run } from './helpers/process.js';
import { tempDir } from './helpers/tmp.js';

const nowMs = Date.UTC(2024, 4, 1, 12, 0, 0);

test('--since accepts ISO 8601 dates and date-times, and spans back from now', () => {
  const cases: [string, number][] = [
    ['2024-05-01', Date.UTC(2024, 4, 1)], // a date alone: 00:00 UTC
    ['2024-05-01T10:30Z', Date.UTC(2024, 4, 1, 10, 30)],
    ['2024-05-01T10:30:15Z', Date.UTC(2024, 4, 1, 10, 30, 15)],
    ['2024-05-01T10:30:15.250Z', Date.UTC(2024, 4, 1, 10, 30, 15, 250)],
    ['2024-05-01T10:30:15+02:00', Date.UTC(2024, 4, 1, 8, 30, 15)],
    ['2024-05-01T10:30:15-05:30', Date.UTC(2024, 4, 1, 16, 0, 15)],
    ['2024-05-01 10:30:15Z', Date.UTC(2024, 4, 1, 10, 30, 15)], // RFC 3339's space
    ['2024-05-01T10:30', new Date(2024, 4, 1, 10, 30).getTime()], // no zone: local time
    ['2024-02-29', Date.UTC(2024, 1, 29)],
    ['90s', nowMs - 90_000],
    ['15m', nowMs - 15 * 60_000],
    ['2h', nowMs - 2 * 3_600_000],
    ['1d', nowMs - 86_400_000],
  ];
  for (const [text, expected] of cases) assert.equal(parseSince(text, nowMs), expected, text);
});

test('--since refuses what is neither (BAD_SINCE), instead of guessing', () => {
  for (const text of ['90', '2024', '2024-05', 'May 1 2024', '1 May 2024 10:00', '05/01/2024', '2024-13-01', '2024-02-30', '2023-02-29', '2024-05-01T25:00Z', '2024-05-01T10:60Z', '2024-05-01T10:30+2', '2024-05-01T10:30:15ZZ', 'yesterday', '', '-1h', '1w']) {
    assert.throws(() => parseSince(text, nowMs), (err: Error & { code?: string }) => err.code === 'BAD_SINCE' && err.message.includes(`"${text}"`), text);
  }
});

test('CLI: `watchdog journal --since 90` is refused with exit 2, not read as 1990', async (t) => {
  const path = join(tempDir(t), 'watchdog.jsonl');
  const j = await JournalWriter.open(path);
  j.append({ event: 'watchdog', cause: 'started' });
  await j.close();
  const r = await run(process.execPath, [cliPath, 'watchdog', 'journal', '--file', path, '--since', '90', '--json']);
  assert.equal(r.code, 2, r.stdout);
  assert.match(r.stderr, /^mirrorbox: --since "90": expected .* \(BAD_SINCE\)\n$/);
  const ok = await run(process.execPath, [cliPath, 'watchdog', 'journal', '--file', path, '--since', '90s', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((JSON.parse(ok.stdout) as unknown[]).length, 1);
});
