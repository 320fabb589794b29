/**
 * Alert by HTTP POST of JSON (pager, SMS and phone gateways take webhooks). The body is the
 * Alert document (see alert.ts) with `"type": "mirrorbox.watchdog.alert"` and `"v": 1`.
 */
import { MirrorboxError } from '../../util/errors.js';
import type { Alert } from './alert.js';

export interface WebhookChannel {
  url: string;
  headers?: Record<string, string> | undefined;
}

export const webhookBodyVersion = 1;

export async function sendWebhook(channel: WebhookChannel, alert: Alert, timeoutMs: number): Promise<void> {
  const res = await fetch(channel.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...channel.headers },
    body: JSON.stringify({ type: 'mirrorbox.watchdog.alert', v: webhookBodyVersion, ...alert }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  await res.arrayBuffer();
  if (!res.ok) throw new MirrorboxError('WEBHOOK_STATUS', `webhook answered ${res.status} ${res.statusText}`);
}
