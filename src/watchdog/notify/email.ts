/** Alert by e-mail over SMTP, through nodemailer. */
import nodemailer from 'nodemailer';
import type { Alert } from './alert.js';

export interface EmailChannel {
  url: string;
  from: string;
  to: string[];
}

export async function sendEmail(channel: EmailChannel, alert: Alert, timeoutMs: number): Promise<void> {
  const transport = nodemailer.createTransport(channel.url, {
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  } as nodemailer.TransportOptions);
  try {
    await transport.sendMail({
      from: channel.from,
      to: channel.to,
      subject: alert.subject,
      text: alert.text,
      headers: { 'X-Mirrorbox-Incident': alert.incident },
    });
  } finally {
    transport.close();
  }
}
