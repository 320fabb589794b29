// STARTTLS with a certificate this test generates (openssl): libnbd (nbdinfo with nbds:// URIs,
// nbdsh with set_tls, nbdcopy) and qemu (tls-creds-x509) over TLS, peer verification against the
// right and a wrong CA, and --tls-required refusing plain clients with NBD_REP_ERR_TLS_REQD.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { clientEnv, nbdsh, randomFile, runOk } from './helpers/nbd-clients.js';
import { OPT, RawNbd, REP } from './helpers/raw-nbd.js';
import { startServer } from './helpers/nbd-server.js';
import { run } from './helpers/process.js';
import { tempDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;

/**
 * A self-signed certificate for localhost / 127.0.0.1 in `dir`, named as gnutls clients (libnbd,
 * qemu) expect: ca-cert.pem (trusted), server-cert.pem, server-key.pem.
 */
async function makeCertificates(dir: string): Promise<{ dir: string; cert: string; key: string }> {
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, 'server-cert.pem');
  const key = join(dir, 'server-key.pem');
  await runOk('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ]);
  copyFileSync(cert, join(dir, 'ca-cert.pem'));
  return { dir, cert, key };
}

async function tlsServer(t: TestContext, required: boolean): Promise<{ server: Awaited<ReturnType<typeof startServer>>; pki: string }> {
  const dir = tempDir(t);
  const pki = await makeCertificates(join(dir, 'pki'));
  const server = await startServer(t, {
    store: join(dir, 'disk0.img'),
    size: '16M',
    args: ['--tls-cert', pki.cert, '--tls-key', pki.key, ...(required ? ['--tls-required'] : [])],
  });
  return { server, pki: pki.dir };
}

interface NbdinfoJson {
  TLS: boolean;
  exports: Array<{ 'export-size': number }>;
}

test('TLS: nbdinfo nbds://, nbdsh with set_tls(2) and peer verification, qemu-io with tls-creds-x509', async (t) => {
  const { server, pki } = await tlsServer(t, false);
  const tlsUri = `nbds://localhost:${server.port}/disk0?tls-certificates=${pki}`;
  const info = JSON.parse(await runOk('nbdinfo', ['--json', tlsUri])) as NbdinfoJson;
  assert.equal(info.TLS, true);
  assert.equal(info.exports[0]!['export-size'], 16 * MiB);
  // TLS is offered, not required: a plain client still works.
  assert.equal((JSON.parse(await runOk('nbdinfo', ['--json', server.uri])) as NbdinfoJson).TLS, false);

  // qemu writes over TLS; libnbd reads it back over TLS, verifying the server against our CA.
  const credentials = `tls-creds-x509,id=tls0,dir=${pki},endpoint=client`;
  const image = `driver=nbd,host=127.0.0.1,port=${server.port},export=disk0,tls-creds=tls0`;
  await runOk('qemu-io', ['--object', credentials, '--image-opts', '-c', 'write -P 0x5a 1M 3M', '-c', 'flush', image]);
  const r = await nbdsh<{ tls: boolean; pattern: boolean; roundTrip: boolean }>(
    `
import random
h.set_tls(2)                       # require TLS
h.set_tls_certificates(os.environ["PKI"])
h.set_tls_verify_peer(True)
h.connect_uri("nbd://localhost:%s/disk0" % os.environ["PORT"])
pattern = h.pread(3 * 1024 * 1024, 1024 * 1024) == b"\\x5a" * (3 * 1024 * 1024)
data = random.randbytes(4 * 1024 * 1024 + 1)
h.pwrite(data, 8 * 1024 * 1024)
h.flush()
result({"tls": h.get_tls_negotiated(), "pattern": pattern, "roundTrip": h.pread(len(data), 8 * 1024 * 1024) == data})
`,
    { PKI: pki, PORT: String(server.port) },
  );
  assert.deepEqual(r, { tls: true, pattern: true, roundTrip: true });

  // A client that trusts another CA refuses this server's certificate.
  const other = await makeCertificates(join(server.dir, 'other-ca'));
  const wrong = await run('nbdinfo', [`nbds://localhost:${server.port}/disk0?tls-certificates=${other.dir}`], { env: clientEnv() });
  assert.notEqual(wrong.code, 0, 'a client with the wrong CA must not connect');
  assert.match(wrong.stderr, /certificate verification/i);
});

test('--tls-required: plain clients get NBD_REP_ERR_TLS_REQD; TLS clients copy data both ways', async (t) => {
  const { server, pki } = await tlsServer(t, true);

  // libnbd without TLS fails to connect.
  const plain = await run('nbdinfo', [server.uri], { env: clientEnv() });
  assert.notEqual(plain.code, 0, `nbdinfo without TLS connected to a --tls-required server: ${plain.stdout}`);

  // The exact answer, seen by a raw client (libnbd 1.14 reports it only as ENOTSUP).
  const raw = await RawNbd.handshake(server.port);
  t.after(() => raw.close());
  for (const option of [OPT.list, OPT.info, OPT.go, OPT.structuredReply]) {
    const data = option === OPT.info || option === OPT.go ? Buffer.from([0, 0, 0, 5, ...Buffer.from('disk0'), 0, 0]) : Buffer.alloc(0);
    const replies = await raw.option(option, data);
    assert.equal(replies.length, 1);
    assert.equal(replies[0]!.type, REP.errTlsReqd, `option ${option}: reply 0x${replies[0]!.type.toString(16)}`);
    assert.match(replies[0]!.data.toString(), /TLS/);
  }
  // EXPORT_NAME cannot carry an error: the server closes the connection.
  raw.sendOption(OPT.exportName, Buffer.from('disk0'));
  await raw.closed;

  // nbdcopy over TLS, both ways.
  const source = join(server.dir, 'source.bin');
  const back = join(server.dir, 'back.bin');
  const content = randomFile(source, 16 * MiB);
  const tlsUri = `nbds://localhost:${server.port}/disk0?tls-certificates=${pki}`;
  await runOk('nbdcopy', ['--flush', source, tlsUri]);
  await runOk('nbdcopy', [tlsUri, back]);
  assert.ok(readFileSync(back).equals(content), 'data copied over TLS differs');
  assert.ok(readFileSync(server.storePath).equals(content), 'the store differs from the data copied over TLS');
});

test('STARTTLS forgets what was negotiated before it: structured replies and extended headers start over', async (t) => {
  const { server } = await tlsServer(t, false);
  // Negotiated before TLS, not again after it: the export must run with simple replies and
  // compact request headers, so a simple read works.
  const first = await RawNbd.handshake(server.port);
  t.after(() => first.close());
  assert.equal((await first.option(OPT.structuredReply)).at(-1)!.type, REP.ack);
  assert.equal((await first.option(OPT.extendedHeaders)).at(-1)!.type, REP.ack);
  const firstTls = await first.startTls();
  t.after(() => firstTls.close());
  await firstTls.go('disk0');
  const { error, data } = await firstTls.readAt(0, 4096);
  assert.equal(error, 0);
  assert.equal(data.length, 4096);
  // A compliant client negotiates again after TLS: each option is accepted as new, not "already on".
  const second = await RawNbd.handshake(server.port);
  t.after(() => second.close());
  assert.equal((await second.option(OPT.structuredReply)).at(-1)!.type, REP.ack);
  const secondTls = await second.startTls();
  t.after(() => secondTls.close());
  assert.equal((await secondTls.option(OPT.structuredReply)).at(-1)!.type, REP.ack, 'STRUCTURED_REPLY after STARTTLS');
  assert.equal((await secondTls.option(OPT.extendedHeaders)).at(-1)!.type, REP.ack, 'EXTENDED_HEADERS after STARTTLS');
});
