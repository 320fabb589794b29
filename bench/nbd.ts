/**
 * `npm run bench:nbd`: fio (ioengine=nbd) against `mirrorbox serve` and nbdkit's file plugin,
 * each over its own preallocated 1 GiB file in the same folder, in the same run, alternating the
 * order every round. Prints the median of each case and the ratio mirrorbox/nbdkit, the peak RSS
 * of both servers, and writes bench/results/nbd.json and nbd.svg.
 *
 * Environment: BENCH_ROUNDS (default 3), BENCH_RUNTIME_S (default 5), BENCH_DIR (default a
 * folder under /var/tmp), BENCH_CASES (comma-separated case ids to run, default all).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, openSync, writeSync, closeSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { median } from './lib/stats.js';
import { freePort, peakRssBytes, startProcess, startWithReadyFile, stopProcess } from './lib/procs.js';
import { writeReport, type BenchRow } from './lib/report.js';
import { fileURLToPath } from 'node:url';

interface FioCase {
  id: string;
  name: string;
  rw: 'write' | 'read' | 'randread' | 'randwrite';
  blockSize: string;
  iodepth: number;
  connections: number;
  /** 'MB/s' for large blocks, 'IOPS' for small. */
  unit: 'MB/s' | 'IOPS';
}

const cases: FioCase[] = [
  { id: 'seqwrite', name: 'seq write 1M QD8', rw: 'write', blockSize: '1M', iodepth: 8, connections: 1, unit: 'MB/s' },
  { id: 'seqread', name: 'seq read 1M QD8', rw: 'read', blockSize: '1M', iodepth: 8, connections: 1, unit: 'MB/s' },
  { id: 'randread1', name: 'rand read 4K QD1', rw: 'randread', blockSize: '4k', iodepth: 1, connections: 1, unit: 'IOPS' },
  { id: 'randread16', name: 'rand read 4K QD16', rw: 'randread', blockSize: '4k', iodepth: 16, connections: 1, unit: 'IOPS' },
  { id: 'randwrite1', name: 'rand write 4K QD1', rw: 'randwrite', blockSize: '4k', iodepth: 1, connections: 1, unit: 'IOPS' },
  { id: 'randwrite16', name: 'rand write 4K QD16', rw: 'randwrite', blockSize: '4k', iodepth: 16, connections: 1, unit: 'IOPS' },
  { id: 'randread16x4', name: 'rand read 4K QD16, 4 connections', rw: 'randread', blockSize: '4k', iodepth: 16, connections: 4, unit: 'IOPS' },
];

const rounds = Number(process.env['BENCH_ROUNDS'] ?? 3);
const runtimeSeconds = Number(process.env['BENCH_RUNTIME_S'] ?? 5);
const imageBytes = 1024 ** 3;
const repoRoot = join(fileURLToPath(import.meta.url), '..', '..', '..');

function progress(text: string): void {
  process.stderr.write(`[bench:nbd] ${text}\n`);
}

/** Writes `sizeBytes` of random data, so both servers read real (not sparse) data. */
function preallocate(path: string, sizeBytes: number): void {
  const chunk = randomFillSync(Buffer.alloc(8 * 1024 * 1024));
  const fd = openSync(path, 'w');
  for (let done = 0; done < sizeBytes; done += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, sizeBytes - done), done);
  closeSync(fd);
}

function runFio(uri: string, c: FioCase): number {
  const args = [
    '--name=bench',
    '--ioengine=nbd',
    `--uri=${uri}`,
    `--rw=${c.rw}`,
    `--bs=${c.blockSize}`,
    `--iodepth=${c.iodepth}`,
    `--numjobs=${c.connections}`,
    '--group_reporting',
    `--size=${imageBytes}`,
    `--runtime=${runtimeSeconds}`,
    '--ramp_time=1',
    '--time_based',
    '--output-format=json',
  ];
  const result = spawnSync('fio', args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`fio failed: ${result.stderr}`);
  const json = JSON.parse(result.stdout.slice(result.stdout.indexOf('{')));
  const job = json.jobs[0];
  if (c.unit === 'IOPS') return job.read.iops + job.write.iops;
  return ((job.read.bw_bytes ?? job.read.bw * 1024) + (job.write.bw_bytes ?? job.write.bw * 1024)) / 1e6;
}

async function main(): Promise<void> {
  const fio = spawnSync('fio', ['--version'], { encoding: 'utf8' });
  if (fio.status !== 0) throw new Error('fio is not installed (apt-get install fio)');
  const dir = process.env['BENCH_DIR'] ?? join('/var/tmp', `mirrorbox-bench-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const ourImage = join(dir, 'mirrorbox.img');
  const peerImage = join(dir, 'nbdkit.img');
  progress(`preallocating two ${imageBytes / 1024 ** 3} GiB images in ${dir}`);
  preallocate(ourImage, imageBytes);
  preallocate(peerImage, imageBytes);

  const ourPort = await freePort();
  const ours = await startProcess(process.execPath, [join(repoRoot, 'bin', 'run.js'), 'serve', '--store', ourImage, '--listen', `127.0.0.1:${ourPort}`], /listening on/);
  const peerPort = await freePort();
  const peerPidFile = join(dir, 'nbdkit.pid');
  const peer = { child: await startWithReadyFile('nbdkit', ['-f', '-i', '127.0.0.1', '-p', String(peerPort), '-P', peerPidFile, 'file', peerImage], peerPidFile) };
  const ourUri = `nbd://127.0.0.1:${ourPort}/disk0`;
  const peerUri = `nbd://127.0.0.1:${peerPort}/`;
  const selected = (process.env['BENCH_CASES'] ?? '').split(',').filter(Boolean);
  const chosen = selected.length ? cases.filter((c) => selected.includes(c.id)) : cases;
  const oursRounds = new Map<string, number[]>();
  const peerRounds = new Map<string, number[]>();
  let ourRss = 0;
  let peerRss = 0;
  try {
    for (let round = 1; round <= rounds; round += 1) {
      for (const c of chosen) {
        const order = round % 2 === 1 ? ['mirrorbox', 'nbdkit'] : ['nbdkit', 'mirrorbox'];
        for (const who of order) {
          const value = runFio(who === 'mirrorbox' ? ourUri : peerUri, c);
          const map = who === 'mirrorbox' ? oursRounds : peerRounds;
          map.set(c.id, [...(map.get(c.id) ?? []), value]);
          progress(`round ${round}/${rounds} ${c.name} ${who}: ${Math.round(value).toLocaleString('en-US')} ${c.unit}`);
        }
      }
    }
  } finally {
    ourRss = peakRssBytes(ours.child.pid!);
    peerRss = peakRssBytes(peer.child.pid!);
    await stopProcess(ours.child);
    await stopProcess(peer.child);
    rmSync(dir, { recursive: true, force: true });
  }
  const rows: BenchRow[] = chosen.map((c) => ({
    name: c.name,
    unit: c.unit,
    ours: median(oursRounds.get(c.id)!),
    peer: median(peerRounds.get(c.id)!),
    oursRounds: oursRounds.get(c.id)!,
    peerRounds: peerRounds.get(c.id)!,
  }));
  const mib = (bytes: number): number => Math.round(bytes / 1024 / 1024);
  rows.push({ name: 'peak RSS of the server', unit: 'MiB', ours: mib(ourRss), peer: mib(peerRss), oursRounds: [mib(ourRss)], peerRounds: [mib(peerRss)], lowerIsBetter: true });
  const nbdkitVersion = spawnSync('nbdkit', ['--version'], { encoding: 'utf8' }).stdout.trim();
  writeReport(join(repoRoot, 'bench', 'results', 'nbd.json'), {
    benchmark: 'bench:nbd',
    peerName: 'nbdkit file',
    date: new Date().toISOString(),
    host: { cpus: cpus().length, node: process.version },
    notes: [
      `fio ${fio.stdout.trim()} ioengine=nbd over TCP 127.0.0.1; ${rounds} alternating rounds of ${runtimeSeconds} s (+1 s ramp) per case; medians`,
      `${nbdkitVersion} file plugin vs mirrorbox serve, each on its own preallocated 1 GiB file in ${dir}`,
      'ratio = mirrorbox / nbdkit (for RSS: nbdkit / mirrorbox); > 1 means mirrorbox is better',
    ],
    rows,
  });
}

await main();
