/**
 * ReplyWriter back-pressure with a file reply stuck behind a full socket: the replies queued
 * behind it must count in the backlog the connection checks before reading more requests, or a
 * client that stops reading could make the server queue replies without bound. The socket here
 * is a Writable whose writes never complete (a peer that reads nothing), and sendfile reports a
 * full socket (0 bytes sent): the two facts a real stuck peer gives.
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { BufferPool, headroomBytes } from '../src/nbd/buffer-pool.js';
import { ReplyWriter, bridgeBytes } from '../src/nbd/reply-writer.js';
import type { FileSpan } from '../src/store/block-device.js';

const KiB = 1024;

function stuckStream(): Duplex {
  return new Duplex({
    read() {},
    write(_chunk, _encoding, _callback) {
      // never calls back: the peer reads nothing
    },
  });
}

const span = (lengthBytes: number): FileSpan => ({ fd: 0, offsetBytes: 0, lengthBytes, started: () => 0, finished: () => {} });

test('replies queued behind a stuck file reply count in the backlog', () => {
  const pool = new BufferPool(64 * 1024 * 1024);
  const stats = { fileReplies: 0, fileReplyWaits: 0 };
  const writer = new ReplyWriter(stuckStream(), pool, { sendFile: () => 0, stats, onSent: () => {}, onFileError: (err) => assert.fail(String(err)) });
  writer.pushFile(16, span(64 * KiB)).buffer.fill(1);
  writer.flush();
  const afterFile = writer.backlogBytes;
  assert.ok(afterFile >= 64 * KiB, `the file reply counts (${afterFile})`);
  assert.equal(stats.fileReplyWaits, 1, 'the full socket made it wait (its head went into a bridge write that never completes)');

  const replyBytes = 32 * KiB;
  const replies = 100;
  for (let i = 0; i < replies; i += 1) {
    const buffer = pool.take(replyBytes);
    writer.pushOwned(buffer, headroomBytes - 16, headroomBytes + replyBytes);
    writer.flush();
  }
  assert.ok(writer.backlogBytes >= afterFile + replies * replyBytes, `every queued reply counts: ${writer.backlogBytes} bytes`);
  assert.ok(bridgeBytes < replyBytes);
});
