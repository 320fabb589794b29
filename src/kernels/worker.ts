import assert from 'node:assert/strict';
import { parentPort, workerData } from 'node:worker_threads';
import { MirrorboxError } from '../util/errors.js';
import { FrameCodec, NonceSequence, sealedFrameBytesMax } from './frame.js';
import type { SlotLayout, WorkerInit, WorkerReply, WorkerRequest } from './pool.js';
import { regionOverheadBytes } from './wasm.js';

/**
 * A pool worker: one FrameCodec (one wasm instance) over a shared memory that holds its job
 * slots. The main thread writes a job's input into a slot and posts a small message; the
 * worker seals or opens it into the slot's output and answers with the length. Expected
 * failures go back as { code, message }; anything else is a bug and crashes the worker (the
 * pool replaces it).
 */

const init = workerData as WorkerInit;
const port = parentPort;
assert.ok(port !== null, 'worker.ts runs as a worker thread');

const sealedMax = sealedFrameBytesMax(init.frameBytesMax);
const codec = await FrameCodec.create({
  key: init.key,
  cipher: init.cipher,
  codec: init.codec,
  zstdLevel: init.zstdLevel,
  frameBytesMax: init.frameBytesMax,
  nonces: new NonceSequence(init.cipher, init.noncePrefix),
  ioRegions: false,
  extraMemoryBytes: init.slotCount * 2 * (sealedMax + regionOverheadBytes),
});
const slots: SlotLayout[] = [];
for (let i = 0; i < init.slotCount; i++) {
  const input = codec.kernels.reserve(sealedMax);
  const output = codec.kernels.reserve(sealedMax);
  slots.push({ inPtr: input.ptr, outPtr: output.ptr, capacityBytes: sealedMax });
}

function reply(message: WorkerReply): void {
  port!.postMessage(message);
}

port.on('message', (request: WorkerRequest) => {
  const slot = slots[request.slot];
  assert.ok(slot !== undefined, `slot ${request.slot}`);
  if (request.op === 'crash') {
    // Fault injection: an uncaught error, exactly like a bug would raise.
    throw new Error('injected worker crash');
  }
  // Nonce counters come from the main thread's sequence only: this worker's NonceSequence has
  // the same prefix but its own counter, so taking from it would repeat a nonce.
  assert.ok(request.op !== 'seal' || request.nonceCounter !== undefined, 'a seal job carries its nonce counter');
  try {
    const outBytes =
      request.op === 'seal'
        ? codec.sealAt(slot.inPtr, request.len, slot.outPtr, slot.capacityBytes, request.aad, request.nonceCounter)
        : codec.openAt(slot.inPtr, request.len, slot.outPtr, slot.capacityBytes, request.aad);
    reply({ type: 'done', slot: request.slot, len: outBytes });
  } catch (err) {
    if (!(err instanceof MirrorboxError)) throw err;
    reply({ type: 'failed', slot: request.slot, code: err.code, message: err.message });
  }
});

reply({ type: 'ready', memory: codec.kernels.memory, slots });
