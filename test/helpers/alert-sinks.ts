/**
 * Real receivers for the watchdog's alerts, started by a test on ephemeral ports: an SMTP server
 * (the smtp-server package), an HTTP server for webhooks, a UDP syslog collector, and a unix
 * datagram syslog socket (Python's socket module: Node has no unix datagram sockets).
 */
import { createServer, type Server } from 'node:http';
import { createSocket } from 'node:dgram';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { SMTPServer } from 'smtp-server';

export interface Mail {
  from: string;
  to: string[];
  raw: string;
  subject: string;
  /** The text body, quoted-printable decoded. */
  text: string;
  headers: Record<string, string>;
}

function decodeQuotedPrintable(text: string): string {
  const bytes = text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

export async function startSmtp(t: Pick<TestContext, 'after'>): Promise<{ url: string; mails: Mail[] }> {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      let raw = '';
      stream.on('data', (c: Buffer) => (raw += c.toString('latin1')));
      stream.on('end', () => {
        const split = raw.indexOf('\r\n\r\n');
        const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
        const headers: Record<string, string> = {};
        for (const line of head.split('\r\n')) {
          const at = line.indexOf(':');
          if (at > 0) headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
        }
        const body = raw.slice(split + 4);
        const qp = /quoted-printable/i.test(headers['content-transfer-encoding'] ?? '');
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          subject: headers['subject'] ?? '',
          text: qp ? decodeQuotedPrintable(body) : body,
          headers,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.server.address() as { port: number }).port;
  return { url: `smtp://127.0.0.1:${port}`, mails };
}

export async function startWebhook(t: Pick<TestContext, 'after'>, status = 200): Promise<{ url: string; posts: { headers: Record<string, string | string[] | undefined>; body: unknown }[]; server: Server }> {
  const posts: { headers: Record<string, string | string[] | undefined>; body: unknown }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      posts.push({ headers: req.headers, body: JSON.parse(body) });
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/alert`, posts, server };
}

export async function startUdpSyslog(t: Pick<TestContext, 'after'>): Promise<{ address: string; messages: string[] }> {
  const messages: string[] = [];
  const socket = createSocket('udp4');
  socket.on('message', (m) => messages.push(m.toString('utf8')));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  t.after(() => socket.close());
  return { address: `127.0.0.1:${socket.address().port}`, messages };
}

/** A unix datagram socket at `path` that prints each datagram it gets as one JSON line. */
export async function startUnixDgramSyslog(t: Pick<TestContext, 'after'>, path: string): Promise<{ messages: string[] }> {
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const script = [
    'import socket, sys, json',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'print("listening", flush=True)',
    'while True:',
    '    print(json.dumps(s.recv(65536).decode("utf-8", "replace")), flush=True)',
  ].join('\n');
  const child = spawn(python, ['-c', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const messages: string[] = [];
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line === 'listening') resolve();
        else messages.push(JSON.parse(line) as string);
      }
    });
  });
  return { messages };
}
