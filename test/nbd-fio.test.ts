// fio's nbd engine (libnbd) with 16 requests in flight: random writes carrying crc32c verify
// headers, then fio reads every block back and checks it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runOk } from './helpers/nbd-clients.js';
import { startServer } from './helpers/nbd-server.js';

const MiB = 1024 * 1024;

interface FioJob {
  jobname: string;
  error: number;
  read: { io_bytes: number; total_ios: number };
  write: { io_bytes: number; total_ios: number };
}

/** fio prints "fio: connected to NBD server" before its JSON document. */
function fioJobs(stdout: string): FioJob[] {
  return (JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: FioJob[] }).jobs;
}

/** fio takes an engine's options (--uri) only after --ioengine. */
const engine = (uri: string): string[] => ['--ioengine=nbd', `--uri=${uri}`];
const common = ['--verify=crc32c', '--verify_fatal=1', '--verify_state_save=0', '--output-format=json', '--exitall_on_error=1'];

test('fio randwrite 4k at iodepth 16 with crc32c verify reports no errors', async (t) => {
  const server = await startServer(t, { size: '64M' });
  const sizeBytes = 48 * MiB;
  const out = await runOk('fio', ['--name=randwrite-verify', ...engine(server.uri), '--rw=randwrite', '--bs=4k', '--iodepth=16', `--size=${sizeBytes}`, ...common], { cwd: server.dir });
  const [job] = fioJobs(out);
  assert.ok(job);
  assert.equal(job.error, 0);
  assert.equal(job.write.io_bytes, sizeBytes, 'every block written');
  assert.equal(job.read.io_bytes, sizeBytes, 'every block read back and verified');
});

test('fio on two connections, mixed block sizes, iodepth 16 each, verify reports no errors', async (t) => {
  const server = await startServer(t, { size: '64M' });
  const out = await runOk(
    'fio',
    ['--name=mixed', ...engine(server.uri), '--rw=randwrite', '--bssplit=4k/50:64k/30:1m/20', '--iodepth=16', '--numjobs=2', '--size=24M', '--offset_increment=32M', ...common],
    { cwd: server.dir },
  );
  const jobs = fioJobs(out);
  assert.equal(jobs.length, 2);
  for (const job of jobs) {
    assert.equal(job.error, 0);
    assert.ok(job.write.total_ios > 0);
    assert.equal(job.read.io_bytes, job.write.io_bytes, 'everything written was read back and verified');
  }
});
