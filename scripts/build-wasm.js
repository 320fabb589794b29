#!/usr/bin/env node
// Builds each AssemblyScript entry listed in asconfig.json ("entries") to dist/wasm/<name>.wasm.
// Run by `npm run build:wasm` (and so by `npm install`, through "prepare").
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const config = JSON.parse(readFileSync(join(root, 'asconfig.json'), 'utf8'));
const entries = config.entries ?? [];
const outDir = join(root, 'dist', 'wasm');
mkdirSync(outDir, { recursive: true });
const asc = join(root, 'node_modules', 'assemblyscript', 'bin', 'asc.js');
for (const entry of entries) {
  const name = basename(entry, '.ts');
  const outFile = join(outDir, `${name}.wasm`);
  execFileSync(process.execPath, [asc, join(root, entry), '--config', join(root, 'asconfig.json'), '--target', 'release', '--outFile', outFile], {
    stdio: 'inherit',
    cwd: root,
  });
  process.stdout.write(`built ${entry} -> ${outFile}\n`);
}
