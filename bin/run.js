#!/usr/bin/env node
// mirrorbox CLI entry point (oclif). Commands live in dist/src/cli/commands.
// Failures print one line, "mirrorbox: <reason>" ("mirrorbox: <reason> (CODE)" for a typed
// MirrorboxError), and exit non-zero: 2 for an expected failure (a MirrorboxError or a usage
// error), 1 for anything else (a bug).
import { flush, run } from '@oclif/core';
import { MirrorboxError } from '../dist/src/util/errors.js';

/** Exit status of an expected failure (a typed MirrorboxError: bad store, port in use...), as oclif's usage errors. */
const exitTypedError = 2;

try {
  await run(process.argv.slice(2), import.meta.url);
  await flush();
} catch (err) {
  const exitCode = err?.oclif?.exit;
  if (exitCode === 0) process.exit(0);
  // this.exit(N): the command has already said why; oclif's "EEXIT: N" is not a reason.
  if (err?.code === 'EEXIT' && typeof exitCode === 'number') process.exit(exitCode);
  const noise = /^(the following errors? occurred:|see more help with --help)$/i;
  const message = String(err?.message ?? err)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !noise.test(line))
    .join('; ');
  const code = err instanceof MirrorboxError ? ` (${err.code})` : '';
  process.stderr.write(`mirrorbox: ${message || 'failed'}${code}\n`);
  process.exit(typeof exitCode === 'number' ? exitCode : err instanceof MirrorboxError ? exitTypedError : 1);
}
