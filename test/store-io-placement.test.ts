import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IoPlacement } from '../src/store/io-placement.js';

test('io placement: synchronous until a call stalls, then the threadpool for holdMs, then synchronous again', () => {
  let nowMs = 1000;
  const placement = new IoPlacement('auto', { stallMs: 2, holdMs: 1000, syncWriteBytesMax: 4096, syncReadBytesMax: 1024, now: () => nowMs });
  assert.equal(placement.writesSync(4096), true);
  assert.equal(placement.writesSync(4097), false, 'above syncWriteBytesMax: threadpool');
  assert.equal(placement.readsSync(1024), true);
  assert.equal(placement.readsSync(1025), false, 'above syncReadBytesMax: threadpool');
  let started = placement.started();
  nowMs += 1.5;
  placement.finished(started);
  assert.equal(placement.writesSync(512), true, 'a fast call keeps I/O on the event loop');
  started = placement.started();
  nowMs += 5;
  placement.finished(started);
  assert.equal(placement.stalls, 1);
  assert.equal(placement.writesSync(512), false, 'after a stall: threadpool');
  nowMs += 999;
  assert.equal(placement.writesSync(512), false);
  nowMs += 2;
  assert.equal(placement.writesSync(512), true, 'after holdMs: event loop again');
});

test('io placement: forced modes ignore size and stalls', () => {
  const sync = new IoPlacement('sync', { syncWriteBytesMax: 1, syncReadBytesMax: 1 });
  const async = new IoPlacement('async');
  assert.equal(sync.writesSync(1 << 30), true);
  assert.equal(sync.readsSync(1 << 30), true);
  assert.equal(async.writesSync(1), false);
  assert.equal(async.readsSync(1), false);
});

test('io placement: a send from the file may take stallMs per syncReadBytesMax before it counts as a stall', () => {
  let nowMs = 1000;
  const placement = new IoPlacement('auto', { stallMs: 2, holdMs: 1000, syncWriteBytesMax: 4096, syncReadBytesMax: 1024, now: () => nowMs });
  assert.equal(placement.sendsSync(), true, 'no size limit on sends');
  let started = placement.started();
  nowMs += 7.5;
  placement.finishedSend(started, 4 * 1024);
  assert.equal(placement.stalls, 0, '4x syncReadBytesMax in 7.5 ms (8 ms allowed) is no stall');
  started = placement.started();
  nowMs += 3;
  placement.finishedSend(started, 100);
  assert.equal(placement.stalls, 1, 'a small send gets stallMs, not less');
  assert.equal(placement.sendsSync(), false, 'after a stall: no sends from the event loop for holdMs');
  nowMs += 1001;
  assert.equal(placement.sendsSync(), true);
  assert.equal(new IoPlacement('async').sendsSync(), false);
  assert.equal(new IoPlacement('sync').sendsSync(), true);
});
