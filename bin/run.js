#!/usr/bin/env node
// mirrorbox CLI entry point (oclif). Commands live in dist/src/cli/commands.
// Failures print one line per reason and exit non-zero (src/cli/failure.ts has the table).
import { flush, run } from '@oclif/core';
import { failureReport } from '../dist/src/cli/failure.js';

try {
  await run(process.argv.slice(2), import.meta.url);
  await flush();
} catch (err) {
  const exitCode = err?.oclif?.exit;
  if (exitCode === 0) process.exit(0);
  // this.exit(N): the command has already said why; oclif's "EEXIT: N" is not a reason.
  if (err?.code === 'EEXIT' && typeof exitCode === 'number') process.exit(exitCode);
  const report = failureReport(err);
  process.stderr.write(report.lines.join('\n') + '\n');
  process.exit(report.exitCode);
}
