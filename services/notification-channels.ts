/**
 * Where notifications go: an Event Grid topic (CloudEvents 1.0, managed identity) and webhooks (JSON with a
 * `text` line for Teams Workflows and Slack, signed with HMAC-SHA256). Each delivery gets an AbortSignal that the
 * dispatcher times out, so a hanging receiver costs at most that long.
 */
import { createHmac } from 'node:crypto';
import { EventGridPublisherClient } from '@azure/eventgrid';
import type { TokenCredential } from '@azure/identity';
import type { NotificationEvent } from '../shared/contracts/notifications.js';

export interface NotificationChannel {
  /** Stable name, recorded per outbox row once the channel has taken the event. */
  readonly name: string;
  deliver(event: NotificationEvent, signal: AbortSignal): Promise<void>;
}

/** CloudEvents `source`: what the event is about. */
export function cloudEventSource(event: NotificationEvent): string {
  if (event.jobId) return `/dbdist/jobs/${event.jobId}`;
  if (event.databaseId) return `/dbdist/databases/${event.databaseId}`;
  return '/dbdist';
}

export function eventGridChannel(options: { endpoint: string; credential: TokenCredential; name?: string }): NotificationChannel {
  const client = new EventGridPublisherClient(options.endpoint, 'CloudEvent', options.credential);
  return {
    name: options.name ?? 'eventgrid',
    async deliver(event, signal) {
      await client.send(
        [{ id: event.id, type: event.type, source: cloudEventSource(event), time: new Date(event.at), data: event, datacontenttype: 'application/json' }],
        { abortSignal: signal },
      );
    },
  };
}

/** Header names of a signed webhook call. Receivers recompute `sha256=<hex HMAC(secret, "<timestamp>.<body>")>`. */
export const WEBHOOK_SIGNATURE_HEADER = 'x-dbdist-signature';
export const WEBHOOK_TIMESTAMP_HEADER = 'x-dbdist-timestamp';

export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export function webhookChannel(options: { url: string; secret: string; name?: string; now?: () => Date }): NotificationChannel {
  const now = options.now ?? (() => new Date());
  return {
    name: options.name ?? `webhook:${new URL(options.url).host}`,
    async deliver(event, signal) {
      const body = JSON.stringify(event);
      const timestamp = String(Math.floor(now().getTime() / 1000));
      const response = await fetch(options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          [WEBHOOK_TIMESTAMP_HEADER]: timestamp,
          [WEBHOOK_SIGNATURE_HEADER]: webhookSignature(options.secret, timestamp, body),
        },
        body,
        signal,
        redirect: 'error',
      });
      // Drain the body so the connection is released; its content is not ours to log.
      await response.arrayBuffer().catch(() => undefined);
      if (!response.ok) throw new Error(`webhook answered ${response.status}`);
    },
  };
}
