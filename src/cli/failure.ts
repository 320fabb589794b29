/**
 * How every command ends on an error (bin/run.js calls this for whatever reaches it): one
 * stderr line per reason and an exit status.
 *
 * | error                                   | lines                                   | status |
 * |-----------------------------------------|-----------------------------------------|--------|
 * | MirrorboxError (expected: bad store,    | `mirrorbox: <reason> (CODE)`; one per   | 2      |
 * | port in use, bad config, no watchdog...) | reason when it has several (`reasons`)  |        |
 * | oclif usage error (bad flag, argument)  | `mirrorbox: <reason>`                   | 2      |
 * | anything else (a bug)                   | `mirrorbox: <message>`                  | 1      |
 */
import { MirrorboxError } from '../util/errors.js';

/** Exit status of an expected failure (oclif's usage errors exit 2 as well). */
export const exitTypedError = 2;
/** Exit status of an unexpected error: a bug. */
export const exitBug = 1;

/** Lines oclif adds around its own messages that say nothing about the failure. */
const oclifNoise = /^(the following errors? occurred:|see more help with --help)$/i;

export interface FailureReport {
  lines: string[];
  exitCode: number;
}

export function failureReport(err: unknown): FailureReport {
  if (err instanceof MirrorboxError) {
    return { lines: err.reasons.map((reason) => `mirrorbox: ${oneLine(reason)} (${err.code})`), exitCode: exitTypedError };
  }
  const oclifExit = (err as { oclif?: { exit?: unknown } } | null)?.oclif?.exit;
  const message = oneLine(String((err as { message?: unknown } | null)?.message ?? err));
  return { lines: [`mirrorbox: ${message || 'failed'}`], exitCode: typeof oclifExit === 'number' ? oclifExit : exitBug };
}

/** A multi-line message as one line ("; " between its lines), without oclif's filler lines. */
function oneLine(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !oclifNoise.test(line))
    .join('; ');
}
