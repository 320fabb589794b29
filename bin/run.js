#!/usr/bin/env node
// mirrorbox CLI entry point (oclif). Commands live in dist/src/cli/commands.
// Failures print one line, "mirrorbox: <reason>", and exit non-zero.
import { flush, run } from '@oclif/core';

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
  process.stderr.write(`mirrorbox: ${message || 'failed'}\n`);
  process.exit(typeof exitCode === 'number' ? exitCode : 1);
}
