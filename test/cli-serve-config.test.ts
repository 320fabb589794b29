import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExportFlag, parseListen, resolveExports } from '../src/cli/serve-config.js';
import { parseSizeBytes, formatSizeBytes } from '../src/util/size.js';

test('sizes: K/M/G/T suffixes are binary; junk is refused with a clear message', () => {
  assert.equal(parseSizeBytes('4096'), 4096);
  assert.equal(parseSizeBytes('1K'), 1024);
  assert.equal(parseSizeBytes('1G'), 1024 ** 3);
  assert.equal(parseSizeBytes('2TiB'), 2 * 1024 ** 4);
  assert.equal(parseSizeBytes('512m'), 512 * 1024 ** 2);
  for (const bad of ['', 'G', '1.5G', '-1', '1Q', '99999999999T']) assert.throws(() => parseSizeBytes(bad), /size/);
  assert.equal(formatSizeBytes(1024 ** 3), '1 GiB');
  assert.equal(formatSizeBytes(1536), '1.5 KiB');
});

test('serve flags: --store with --export NAME, and NAME=PATH[:SIZE] exports', () => {
  assert.deepEqual(resolveExports({ store: 'a.img', exportFlags: [] }), [{ name: 'disk0', path: 'a.img' }]);
  assert.deepEqual(resolveExports({ store: 'a.img', size: '1G', exportFlags: ['boot'] }), [{ name: 'boot', path: 'a.img', sizeBytes: 1024 ** 3 }]);
  assert.deepEqual(resolveExports({ store: 'a.img', exportFlags: ['x=/tmp/b:c.img:2M', 'y=y.img'] }), [
    { name: 'disk0', path: 'a.img' },
    { name: 'x', path: '/tmp/b:c.img', sizeBytes: 2 * 1024 ** 2 },
    { name: 'y', path: 'y.img' },
  ]);
  assert.deepEqual(parseExportFlag('n=p:10'), { name: 'n', path: 'p', sizeBytes: 10 });
  assert.throws(() => resolveExports({ exportFlags: [] }), /nothing to serve/);
  assert.throws(() => resolveExports({ exportFlags: ['a=x.img', 'a=y.img'] }), /given twice/);
  assert.throws(() => resolveExports({ exportFlags: ['=x.img'] }), /name is empty/);
  assert.throws(() => resolveExports({ exportFlags: ['disk'] }), /no --store/);
  assert.throws(() => resolveExports({ size: '1G', exportFlags: ['a=b'] }), /--size applies to --store/);
});

test('serve flags: --listen HOST:PORT with IPv6 brackets', () => {
  assert.deepEqual(parseListen('127.0.0.1:10809'), { host: '127.0.0.1', port: 10809 });
  assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseListen(':10809'), { host: '0.0.0.0', port: 10809 });
  for (const bad of ['localhost', '1.2.3.4:99999', 'x:y']) assert.throws(() => parseListen(bad), /--listen/);
});
