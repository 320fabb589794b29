import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BusyPoll } from '../src/nbd/busy-poll.js';

test('busy poll: spins for the window after activity, then stops and costs nothing while idle', async () => {
  // A clock the test moves, so a loaded machine cannot make the window pass before the first turn.
  let nowMs = 0;
  const poll = new BusyPoll(20_000, () => nowMs); // 20 ms
  poll.activity();
  assert.equal(poll.active, true);
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  assert.equal(poll.active, true, 'still inside the window');
  assert.ok(poll.turns >= 3, `it polled on every loop turn (${poll.turns} turns)`);
  nowMs = 20.001;
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(poll.active, false, 'the spin ended after its window');
  const turns = poll.turns;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(poll.turns, turns, 'no turns while idle');
});

test('busy poll: each activity extends the window; stop() ends it at once; 0 never spins', async () => {
  let nowMs = 0;
  const poll = new BusyPoll(100, () => nowMs);
  poll.activity();
  await new Promise((r) => setImmediate(r));
  assert.equal(poll.active, true, 'inside the window');
  nowMs = 0.09;
  poll.activity();
  nowMs = 0.15;
  await new Promise((r) => setImmediate(r));
  assert.equal(poll.active, true, 'extended to 0.19 ms by the second activity');
  poll.stop();
  assert.equal(poll.active, false);
  const off = new BusyPoll(0);
  off.activity();
  assert.equal(off.active, false);
  assert.throws(() => new BusyPoll(-1), RangeError);
});
