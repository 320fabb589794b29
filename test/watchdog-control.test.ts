/**
 * The control socket against clients that misbehave: a connection that sends nothing, or half
 * a request line, must neither keep a stopped watchdog alive nor stay open for ever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { controlRequestWaitMsMax } from '../src/watchdog/limits.js';
import { statePaths } from '../src/watchdog/state.js';
import { requestStatus } from '../src/watchdog/watchdog.js';
import { cliPath } from './helpers/paths.js';
import { run } from './helpers/process.js';
import { serviceCommand, startWatchdog, watchdogApp } from './helpers/watchdog.js';

const cli = (...args: string[]): ReturnType<typeof run> => run(process.execPath, [cliPath, ...args]);
const sleep = (ms: number): Promise<'timeout'> => new Promise((r) => setTimeout(() => r('timeout'), ms));

/** A raw connection to the control socket; `closed` resolves when the server ends it. */
async function rawClient(t: { after: (fn: () => void) => void }, path: string): Promise<{ socket: Socket; closed: Promise<number> }> {
  const socket = connect(path);
  t.after(() => socket.destroy());
  socket.on('error', () => undefined);
  socket.resume();
  const closed = new Promise<number>((r) => socket.once('close', () => r(performance.now())));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, closed };
}

const oneProcess = (): string => `ladder: [restart-failed]\nprocesses:\n  - { name: one, command: ${serviceCommand('one')}, ready: { stdout: "^ready one" } }\n`;

test('watchdog stop exits at once although a control client connected and sent nothing (or half a line)', async (t) => {
  const app = watchdogApp(t, oneProcess());
  const w = await startWatchdog(t, app.config, app.stateDir, app.journal);
  const socketPath = statePaths(app.stateDir).socket;
  const idle = await rawClient(t, socketPath);
  const half = await rawClient(t, socketPath);
  half.socket.write('{"v":1,"cmd":"sta');
  await requestStatus(app.stateDir); // the server has taken both connections in

  const stop = await cli('watchdog', 'stop', '-c', app.config);
  assert.equal(stop.code, 0, stop.stderr);
  // Well under controlRequestWaitMsMax: the stop itself must cut the silent connections.
  const boundMs = 5_000;
  assert.ok(boundMs < controlRequestWaitMsMax);
  const exit = await Promise.race([w.proc.exited, sleep(boundMs)]);
  assert.notEqual(exit, 'timeout', `the watchdog did not exit within ${boundMs} ms of the stop reply`);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.match(w.proc.stdout(), /watchdog stopped/);
  await Promise.all([idle.closed, half.closed]);
});

test(`a control connection that sends no whole request is closed after controlRequestWaitMsMax; the watchdog serves on`, async (t) => {
  const app = watchdogApp(t, oneProcess());
  await startWatchdog(t, app.config, app.stateDir, app.journal);
  const socketPath = statePaths(app.stateDir).socket;
  const openedMs = performance.now();
  const idle = await rawClient(t, socketPath);
  const half = await rawClient(t, socketPath);
  half.socket.write('{"v":1,');
  const slackMs = 3_000;
  const closedAt = await Promise.race([Promise.all([idle.closed, half.closed]), sleep(controlRequestWaitMsMax + slackMs)]);
  assert.notEqual(closedAt, 'timeout', 'silent connections were never closed');
  for (const at of closedAt as number[]) assert.ok(at - openedMs >= controlRequestWaitMsMax - 100, `closed after ${Math.round(at - openedMs)} ms, before the limit`);
  assert.equal((await requestStatus(app.stateDir)).supervisor.processes[0]!.state, 'running');
});
