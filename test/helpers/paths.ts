import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The repository root (tests run from dist/test/, two levels below it). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The CLI entry point, as a user runs it. */
export const cliPath = join(repoRoot, 'bin', 'run.js');
