/** Readiness/liveness probes against real servers: nbdkit (a real NBD server), HTTP, files. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileProbe, httpProbe, makeProbe, nbdProbe, tcpProbe } from '../src/watchdog/probes.js';
import { tempDir } from './helpers/tmp.js';
import { freePort, waitUntil } from './helpers/watchdog.js';

const probeFailed = (pattern: RegExp) => (err: Error & { code?: string }) => err.code === 'PROBE_FAILED' && pattern.test(err.message);

test('nbd probe: passes on nbdkit\'s handshake, fails on a non-NBD server and a closed port', async (t) => {
  const port = await freePort();
  const nbdkit = spawn('nbdkit', ['-f', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'memory', '1M'], { stdio: 'ignore' });
  t.after(() => nbdkit.kill('SIGKILL'));
  let up = false;
  await waitUntil(() => {
    void tcpProbe('127.0.0.1', port, 200).then(() => (up = true), () => undefined);
    return up;
  }, 10_000, 'nbdkit listening');
  await nbdProbe('127.0.0.1', port, 2000);
  await makeProbe({ nbd: `nbd://127.0.0.1:${port}` }, '/').probe(2000);
  // Politely: after the probe's NBD_OPT_ABORT, nbdkit still serves the next client.
  await nbdProbe('127.0.0.1', port, 2000);

  const http = createServer((_req, res) => res.end('hello'));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  t.after(() => http.close());
  const httpPort = (http.address() as { port: number }).port;
  await assert.rejects(nbdProbe('127.0.0.1', httpPort, 500), probeFailed(/no answer within 500 ms|no NBDMAGIC greeting/));
  nbdkit.kill('SIGKILL');
  await new Promise((r) => nbdkit.once('exit', r));
  await assert.rejects(nbdProbe('127.0.0.1', port, 500), probeFailed(/connection refused/));
});

test('http probe: 2xx/3xx pass, 5xx and silence fail', async (t) => {
  let status = 200;
  let answer = true;
  const server = createServer((_req, res) => {
    if (!answer) return; // never answers: a hung service
    res.statusCode = status;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/health`;
  await httpProbe(url, 1000);
  status = 302;
  await httpProbe(url, 1000);
  status = 503;
  await assert.rejects(httpProbe(url, 1000), probeFailed(/status 503/));
  answer = false;
  await assert.rejects(httpProbe(url, 200), probeFailed(/no answer within 200 ms/));
});

test('file probe: existence, and with maxAgeMs a heartbeat', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'beat');
  assert.throws(() => fileProbe(path, undefined), probeFailed(/does not exist/));
  writeFileSync(path, '');
  fileProbe(path, undefined);
  fileProbe(path, 5000);
  const old = new Date(Date.now() - 10_000);
  utimesSync(path, old, old);
  assert.throws(() => fileProbe(path, 5000), probeFailed(/last modified \d+ ms ago \(max 5000 ms\)/));
  // Relative paths are taken from the process's folder.
  await assert.rejects(makeProbe({ file: 'beat', maxAgeMs: 5000 }, dir).probe(100), probeFailed(new RegExp(`file ${path}: last modified`)));
});
