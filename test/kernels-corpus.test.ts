import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { FrameCodec, lz4DecompressBlock } from '../src/kernels/index.js';
import { MirrorboxError } from '../src/util/errors.js';
import { repoRoot } from './helpers/paths.js';

// Replays test/corpus/kernels/ (see its README): each input must give its recorded outcome.

const require = createRequire(import.meta.url);
const lz4napi = require('lz4-napi') as { uncompressSync(data: Buffer): Buffer };
const corpusDir = join(repoRoot, 'test', 'corpus', 'kernels');
const lz4OutputBytesMax = 65536;
const frameKey = Buffer.alloc(32, 0x11);
const frameBytesMax = 65536;

function outcome(run: () => unknown): string {
  try {
    run();
    return 'ok';
  } catch (err) {
    if (err instanceof MirrorboxError) return err.code;
    throw err;
  }
}

test('every corpus input gives its recorded outcome', async () => {
  const files = readdirSync(corpusDir).filter((name) => name.endsWith('.bin'));
  assert.ok(files.length >= 20, 'the corpus is there');
  const codec = await FrameCodec.create({ key: frameKey, frameBytesMax });
  for (const name of files) {
    const match = /^(lz4|frame)-[a-z0-9-]+\.([A-Za-z_]+)\.bin$/.exec(name);
    assert.ok(match, `corpus file name ${name}`);
    const [, kind, expected] = match;
    const bytes = readFileSync(join(corpusDir, name));
    if (kind === 'lz4') {
      let decoded: Uint8Array | undefined;
      assert.equal(outcome(() => (decoded = lz4DecompressBlock(bytes, lz4OutputBytesMax))), expected, name);
      if (decoded !== undefined) {
        const prefix = Buffer.alloc(4);
        prefix.writeUInt32LE(decoded.length);
        assert.ok(lz4napi.uncompressSync(Buffer.concat([prefix, bytes])).equals(Buffer.from(decoded)), `${name}: lz4-napi agrees`);
      }
    } else {
      assert.equal(outcome(() => codec.open(bytes)), expected, name);
    }
  }
});
