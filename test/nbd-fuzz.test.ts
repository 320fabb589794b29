// Fuzzing the NBD decoders and the live server. Property runs use a fresh random seed each time
// (fast-check prints the seed and the shrunk input on failure: add it to test/corpus/nbd/);
// every file in test/corpus/nbd/ is replayed on every run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  NbdWireError,
  decodeInfoRequest,
  decodeMetaContextRequest,
  decodeOptionHeader,
  decodeRequestHeader,
  newRequestHeader,
} from '../src/nbd/wire.js';
import { startInProcessServer } from './helpers/inprocess-server.js';
import { repoRoot } from './helpers/paths.js';
import { CMD, OPT, RawNbd } from './helpers/raw-nbd.js';

const corpusDir = join(repoRoot, 'test', 'corpus', 'nbd');

/** Only NbdWireError may escape a decoder of client bytes. */
function decodesOrRefuses(decode: () => unknown): void {
  try {
    decode();
  } catch (err) {
    assert.ok(err instanceof NbdWireError, `unexpected ${(err as Error).name}: ${(err as Error).message}`);
  }
}

test('fuzz: option data decoders accept or refuse any bytes, never crash', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const data = Buffer.from(bytes);
      decodesOrRefuses(() => decodeInfoRequest(data));
      decodesOrRefuses(() => decodeMetaContextRequest(data));
      decodesOrRefuses(() => decodeOptionHeader(Buffer.concat([data, Buffer.alloc(16)])));
    }),
    { numRuns: 3000 },
  );
});

test('fuzz: INFO/GO and META_CONTEXT data round-trip through the decoders', () => {
  const name = fc.string({ maxLength: 40 }).filter((s) => !s.includes('\0'));
  fc.assert(
    fc.property(name, fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 8 }), fc.array(name, { maxLength: 5 }), (exportName, infos, queries) => {
      assert.deepEqual(decodeInfoRequest(RawNbd.infoData(exportName, infos)), { exportName, infoTypes: infos });
      assert.deepEqual(decodeMetaContextRequest(RawNbd.metaData(exportName, queries)), { exportName, queries });
    }),
    { numRuns: 1000 },
  );
});

test('fuzz: request header decoder reads any 32 bytes without throwing', () => {
  const header = newRequestHeader();
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.boolean(), (bytes, extended) => {
      const ok = decodeRequestHeader(Buffer.from(bytes), 0, extended, header);
      const magic = Buffer.from(bytes).readUInt32BE(0);
      assert.equal(ok, magic === (extended ? 0x21e41c71 : 0x25609513));
      if (ok) assert.ok(header.offsetBytes >= 0 && header.lengthBytes >= 0);
    }),
    { numRuns: 3000 },
  );
});

/** The server still serves a well-behaved client: GO, write, read back. */
async function serverStillServes(port: number, marker: number): Promise<void> {
  const client = await RawNbd.connect(port);
  try {
    await client.greet();
    await client.go('disk0');
    const data = Buffer.alloc(512, marker);
    client.request(CMD.write, 1n, 0n, 512n, 0, data);
    assert.equal((await client.readReply()).error, 0);
    client.request(CMD.read, 2n, 0n, 512n);
    assert.ok((await client.readReply(512)).data.equals(data), 'bytes read back equal bytes written');
  } finally {
    client.close();
  }
}

/** Sends each part with a pause between (so split messages reach the server separately). */
async function sendParts(client: RawNbd, parts: Buffer[]): Promise<void> {
  for (const part of parts) {
    client.write(part);
    await new Promise((r) => setTimeout(r, 5));
  }
  await client.closedWithin(150);
}

function corpusParts(file: string): Buffer[] {
  return readFileSync(join(corpusDir, file), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => Buffer.from(line.replace(/\s+/g, ''), 'hex'));
}

test('fuzz corpus: every saved input leaves the server serving other clients', async (t) => {
  const { port } = await startInProcessServer(t);
  const files = readdirSync(corpusDir).filter((f) => f.endsWith('.hex')).sort();
  assert.ok(files.length >= 10, 'the corpus is present');
  let marker = 0;
  for (const file of files) {
    const client = await RawNbd.connect(port);
    await client.greet(file.startsWith('handshake-') ? 0 : 3);
    if (file.startsWith('handshake-')) {
      // The corpus line carries the client flags itself: undo the greet's flags by sending the
      // file from a fresh connection instead.
      client.close();
      const raw = await RawNbd.connect(port);
      await raw.read(18);
      await sendParts(raw, corpusParts(file));
      raw.close();
    } else {
      await client.option(OPT.structuredReply);
      await client.go('disk0');
      await sendParts(client, corpusParts(file));
      if (readFileSync(join(corpusDir, file), 'utf8').includes('# expect continue')) {
        // The same connection must still answer: read replies until our probe's cookie shows up.
        client.request(CMD.read, 0xc0ffeen, 0n, 512n);
        let reply = await client.readReply();
        for (let skipped = 0; reply.cookie !== 0xc0ffeen && skipped < 16; skipped += 1) reply = await client.readReply();
        assert.equal(reply.cookie, 0xc0ffeen, `${file}: the connection stayed in step`);
        assert.equal(reply.error, 0, `${file}: the probe read succeeded`);
      }
      client.close();
    }
    marker = (marker + 1) & 0xff;
    await serverStillServes(port, marker);
  }
});

test('fuzz: random option sequences during the handshake', async (t) => {
  const { port } = await startInProcessServer(t, { limits: { handshakeTimeoutMs: 2000 } });
  const option = fc.record({
    option: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 0xffffffff })),
    data: fc.uint8Array({ maxLength: 48 }),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(option, { maxLength: 6 }), async (options) => {
      const client = await RawNbd.connect(port);
      try {
        await client.greet();
        for (const { option: code, data } of options) {
          if (code === OPT.exportName || code === OPT.go || code === OPT.abort || code === OPT.startTls) continue;
          client.sendOption(code, Buffer.from(data));
          const reply = await client.readOptionReply();
          assert.equal(reply.option, code, 'each reply names its option');
          // LIST, META_CONTEXT and INFO may send several replies before the final one.
          let last = reply;
          while (last.type !== 1 && last.type < 0x8000_0000) last = await client.readOptionReply();
        }
        const { sizeBytes } = await client.go('disk0');
        assert.equal(sizeBytes, 64n * 1024n * 1024n);
      } finally {
        client.close();
      }
    }),
    { numRuns: 60 },
  );
  await serverStillServes(port, 0x42);
});

test('fuzz: random bytes and random requests during transmission', async (t) => {
  const { port } = await startInProcessServer(t);
  const request = fc.record({
    flags: fc.integer({ min: 0, max: 0xffff }),
    type: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 0xffff })),
    offset: fc.oneof(fc.bigInt({ min: 0n, max: 70n * 1024n * 1024n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
    length: fc.oneof(fc.integer({ min: 0, max: 8192 }), fc.integer({ min: 0, max: 0xffffffff })),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(request, { maxLength: 5 }), fc.uint8Array({ maxLength: 64 }), async (requests, tail) => {
      const client = await RawNbd.connect(port);
      try {
        await client.greet();
        await client.option(OPT.structuredReply);
        await client.go('disk0');
        for (const r of requests) {
          // A write carries its payload; keep payloads small so the run stays quick.
          if (r.type === CMD.write && r.length > 8192) continue;
          if (r.type === CMD.disc) continue;
          const payload = r.type === CMD.write ? Buffer.alloc(r.length, 0x33) : undefined;
          client.request(r.type, 9n, r.offset, BigInt(r.length), r.flags, payload);
          const reply = await client.readReply();
          assert.equal(reply.cookie, 9n);
          // Structured replies may take several chunks; read to the DONE flag.
          let last = reply;
          while ((last.flags & 1) === 0) last = await client.readReply();
        }
        client.write(Buffer.from(tail));
        await client.closedWithin(20);
      } finally {
        client.close();
      }
    }),
    { numRuns: 60 },
  );
  await serverStillServes(port, 0x43);
});
