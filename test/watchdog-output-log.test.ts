/**
 * A process's output log (src/watchdog/output-log.ts): the watchdog reads each process's output
 * pipe and writes and rotates the log itself. Real processes printing numbered lines:
 * - after a rotation new lines land in the current file, never in the rotated one, every file
 *   stays within outputRotate.maxBytes, and no line is lost or repeated across the boundaries;
 * - a process printing while its watchdog is SIGKILLed is not killed by a broken pipe; the next
 *   watchdog adopts it and its output goes on in the log, nothing lost;
 * - a disk that does not take writes holds up neither the watchdog's event loop nor its memory:
 *   reading pauses at the buffer bound, the process waits, and everything arrives once the disk
 *   moves again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, createReadStream, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { bytesBeforeRotation, OutputLog } from '../src/watchdog/output-log.js';
import { requestStatus } from '../src/watchdog/watchdog.js';
import { cliPath } from './helpers/paths.js';
import { run } from './helpers/process.js';
import { alive, startWatchdog, waitForJournal, waitUntil, watchdogApp, watchdogDir } from './helpers/watchdog.js';

const rotateBytes = 4096;
const lineFill = 'x'.repeat(30);

/** A node process printing `lines` numbered lines every `everyMs` ms (after "ready"), forever. */
function talker(lines: number, everyMs: number): string {
  const script = `console.log('ready'); let i = 0; setInterval(() => { for (let k = 0; k < ${lines}; k++) console.log('line ' + i++ + ' ${lineFill}'); }, ${everyMs});`;
  return JSON.stringify([process.execPath, '-e', script]);
}

/** The numbers of the "line N" lines of `text`, checking each line is whole. */
function lineNumbers(text: string): number[] {
  const numbers: number[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line === 'ready') continue;
    const m = /^line (\d+) x{30}$/.exec(line);
    assert.ok(m, `not a whole line: ${JSON.stringify(line)}`);
    numbers.push(Number(m[1]));
  }
  return numbers;
}

function assertConsecutive(numbers: readonly number[], what: string): void {
  assert.ok(numbers.length > 0, `${what}: no lines`);
  for (let i = 1; i < numbers.length; i += 1) {
    assert.equal(numbers[i], numbers[i - 1]! + 1, `${what}: line ${numbers[i - 1]} is followed by line ${numbers[i]}`);
  }
}

const cli = (...args: string[]): ReturnType<typeof run> => run(process.execPath, [cliPath, ...args]);

test('after a rotation new output lands in the current log; rotated files keep their size bound; no line lost', async (t) => {
  const { config, stateDir, journal } = watchdogApp(
    t,
    `ladder: [restart-failed]
outputRotate: { maxBytes: ${rotateBytes}, keep: 3 }
processes:
  - { name: talker, command: ${talker(2, 10)}, ready: { stdout: "^ready$" } }
`,
  );
  const log = join(stateDir, 'logs', 'talker.log');
  await startWatchdog(t, config, stateDir, journal);
  await waitUntil(() => existsSync(`${log}.1`), 10_000, 'a first rotation');

  // Between two rotations (same .log.1 inode before and after), the rotated file does not
  // change while the current one grows.
  let seen = 0;
  for (let tries = 0; seen < 3 && tries < 50; tries += 1) {
    const before = { rotated: statSync(`${log}.1`), current: statSync(log) };
    await new Promise((r) => setTimeout(r, 100));
    const after = { rotated: statSync(`${log}.1`), current: statSync(log) };
    if (after.rotated.ino !== before.rotated.ino || after.current.ino !== before.current.ino) continue; // it rotated meanwhile
    assert.equal(after.rotated.size, before.rotated.size, 'the rotated file was written to');
    assert.ok(after.current.size > before.current.size, 'the current file did not grow');
    seen += 1;
  }
  assert.equal(seen, 3, 'three quiet samples between rotations');
  // The lines in the current file continue those of the rotated one.
  await waitUntil(() => existsSync(`${log}.3`), 15_000, 'three rotations');

  const stop = await cli('watchdog', 'stop', '-c', config);
  assert.equal(stop.code, 0, stop.stderr);
  const files = [`${log}.3`, `${log}.2`, `${log}.1`, log];
  for (const f of files) assert.ok(statSync(f).size <= rotateBytes, `${f} is ${statSync(f).size} bytes`);
  for (const f of files.slice(0, -1)) assert.ok(statSync(f).size > rotateBytes - 2 * (lineFill.length + 12), `${f} was rotated early`);
  assert.ok(!existsSync(`${log}.4`), 'only keep: 3 old files');
  const numbers = lineNumbers(files.map((f) => readFileSync(f, 'utf8')).join(''));
  assertConsecutive(numbers, 'old files then the current one');
});

test('a process printing through its watchdog\'s SIGKILL lives on; the next watchdog adopts it; the log loses at most the read in flight at the kill', async (t) => {
  const { config, stateDir, journal } = watchdogApp(
    t,
    `ladder: [restart-failed]
processes:
  - { name: talker, command: ${talker(1, 5)}, ready: { stdout: "^ready$" } }
`,
  );
  const log = join(stateDir, 'logs', 'talker.log');
  const first = await startWatchdog(t, config, stateDir, journal);
  const pid = (await requestStatus(stateDir)).supervisor.processes[0]!.pid!;
  await waitUntil(() => lineNumbers(readFileSync(log, 'utf8')).length > 20, 5000, 'output in the log');
  first.proc.child.kill('SIGKILL');
  await first.proc.exited;
  // Whole lines only: the log may end inside a line the killed watchdog had not finished writing.
  const atKill = readFileSync(log, 'utf8').split('\n').flatMap((l) => /^line (\d+) x{30}$/.exec(l)?.[1] ?? []).map(Number);
  const linesAtKill = atKill.length;
  const lastAtKill = atKill.at(-1)!;
  // No watchdog for a while: the output waits in the pipe; the process does not die of it.
  await new Promise((r) => setTimeout(r, 700));
  assert.ok(alive(pid), 'the process died without its watchdog');
  assert.ok(readFileSync(log, 'utf8').split('\n').length <= linesAtKill + 3, 'nobody wrote the log meanwhile');

  await startWatchdog(t, config, stateDir, journal);
  const adopted = await waitForJournal(journal, (es) => es.some((e) => e.event === 'adopt'), 5000, 'adoption');
  assert.equal(adopted.find((e) => e.event === 'adopt')!.pid, pid);
  const waitedLines = 140; // 700 ms at one line per 5 ms
  await waitUntil(() => readFileSync(log, 'utf8').split('\n').length > linesAtKill + waitedLines, 5000, 'the waiting output in the log');
  const stop = await cli('watchdog', 'stop', '-c', config);
  assert.equal(stop.code, 0, stop.stderr);
  // What the killed watchdog had read from the pipe but not yet written is gone with it (at most
  // one read, 64 KiB): the log may have one gap, exactly where the kill was, with the line cut
  // there. Everything written while no watchdog ran, and after, is there in order.
  const lines = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '' && l !== 'ready');
  const whole = /^line (\d+) x{30}$/;
  const cut = lines.findIndex((l) => !whole.test(l));
  if (cut !== -1) assert.equal(lines.filter((l) => !whole.test(l)).length, 1, 'more than one cut line');
  const numbers = lines.filter((l) => whole.test(l)).map((l) => Number(whole.exec(l)![1]));
  assert.equal(numbers[0], 0);
  const gaps = numbers.flatMap((n, i) => (i > 0 && n !== numbers[i - 1]! + 1 ? [{ after: numbers[i - 1]!, next: n }] : []));
  assert.ok(gaps.length <= 1, `more than one gap: ${JSON.stringify(gaps)}`);
  const lostMax = Math.ceil((64 * 1024) / (lineFill.length + 'line  '.length + 5)) + 1;
  for (const gap of gaps) {
    assert.ok(gap.next > gap.after, `lines out of order: ${JSON.stringify(gap)}`);
    assert.ok(gap.after >= lastAtKill - 1 && gap.after <= lastAtKill + 1, `a gap after line ${gap.after}, not at the kill (last line then: ${lastAtKill})`);
    assert.ok(gap.next - gap.after - 1 <= lostMax, `${gap.next - gap.after - 1} lines lost, more than one read`);
  }
  if (gaps.length === 0) assert.equal(cut, -1, 'a cut line without a gap');
});

test('a disk that takes no writes: the event loop keeps running, memory stays bounded, the process waits, nothing is lost', async (t) => {
  const dir = watchdogDir(t);
  const logDir = join(dir, 'logs');
  const pipeDir = join(dir, 'run');
  mkdirSync(logDir);
  mkdirSync(pipeDir);
  // The "disk": the log is a FIFO nobody reads yet, so opening and writing it wait (in libuv's
  // threadpool, as a stuck disk would).
  await run('mkfifo', [join(logDir, 'p.log')]);
  const bufferBytesMax = 64 * 1024;
  const output = OutputLog.open({ logDir, pipeDir, name: 'p', bufferBytesMax });
  t.after(() => output.close());

  const lines = 40_000; // ~1.3 MB, 20 times the buffer
  const childFd = output.childFd();
  const child = spawn('/bin/sh', ['-c', `i=0; while [ $i -lt ${lines} ]; do echo "line $i ${lineFill}"; i=$((i+1)); done`], {
    stdio: ['ignore', childFd, 'ignore'],
  });
  closeSync(childFd);
  t.after(() => child.kill('SIGKILL'));
  // A second of a stuck disk: timers stay on time, the queue stays near its bound.
  let lateMsMax = 0;
  for (let i = 0; i < 20; i += 1) {
    const startedMs = performance.now();
    await new Promise((r) => setTimeout(r, 50));
    lateMsMax = Math.max(lateMsMax, performance.now() - startedMs - 50);
  }
  assert.ok(lateMsMax < 100, `a timer ran ${lateMsMax.toFixed(1)} ms late`);
  const readChunkBytes = 64 * 1024;
  assert.ok(output.queuedBytesPeak <= bufferBytesMax + readChunkBytes, `queued ${output.queuedBytesPeak} bytes`);
  assert.ok(output.queuedBytesPeak > bufferBytesMax, 'the buffer filled');
  assert.equal(child.exitCode, null, 'the process waits on its output (it has not finished)');

  // The disk moves again: everything arrives, in order.
  const received: Buffer[] = [];
  const disk = createReadStream(join(logDir, 'p.log'));
  disk.on('data', (c) => received.push(c as Buffer));
  await new Promise((r) => child.once('exit', r));
  await output.close();
  await new Promise<void>((r) => disk.once('close', () => r()));
  const numbers = lineNumbers(Buffer.concat(received).toString('utf8'));
  assert.equal(numbers.length, lines);
  assert.equal(numbers[0], 0);
  assertConsecutive(numbers, 'what reached the disk');
  assert.equal(output.droppedBytes, 0);
});

test('bytesBeforeRotation: files never pass the bound, the bytes are kept in order, cuts fall after a newline', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a.map((b) => (b % 8 === 0 ? 0x0a : b)))), { maxLength: 30 }),
      fc.integer({ min: 1, max: 200 }),
      (chunks, bytesMax) => {
        const files: Buffer[][] = [[]];
        let size = 0;
        for (const chunk of chunks) {
          let rest = chunk;
          while (rest.length > 0) {
            const n = bytesBeforeRotation(rest, size, bytesMax);
            files.at(-1)!.push(rest.subarray(0, n));
            size += n;
            rest = rest.subarray(n);
            if (rest.length > 0) {
              // Rotation: the file ends after a newline unless a line did not fit a whole file.
              // (n = 0: the line that does not fit starts the next file.)
              const full = Buffer.concat(files.at(-1)!);
              assert.ok(n === 0 || full.at(-1) === 0x0a || full.length === bytesMax, 'cut inside a line');
              files.push([]);
              size = 0;
            }
          }
        }
        for (const f of files) assert.ok(Buffer.concat(f).length <= bytesMax);
        assert.deepEqual(Buffer.concat(files.flat()), Buffer.concat(chunks));
      },
    ),
  );
});
