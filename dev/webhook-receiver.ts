/**
 * A local webhook receiver for the sandbox: takes the notifier's signed JSON calls on loopback, checks each
 * signature as a real receiver should (services/notification-channels.ts says how), and keeps what it got.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { NotificationEvent } from '../shared/contracts/notifications.js';
import { WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER, webhookSignature } from '../services/notification-channels.js';

export interface WebhookReceiver {
  url: string;
  /** Events whose signature checked out, in arrival order. */
  received: NotificationEvent[];
  /** Calls refused for a missing or wrong signature. */
  refused: number;
  close(): Promise<void>;
}

export async function startWebhookReceiver(options: { secret: string; onEvent?: (event: NotificationEvent) => void }): Promise<WebhookReceiver> {
  const receiver = { received: [] as NotificationEvent[], refused: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const expected = Buffer.from(webhookSignature(options.secret, String(req.headers[WEBHOOK_TIMESTAMP_HEADER] ?? ''), body));
      const given = Buffer.from(String(req.headers[WEBHOOK_SIGNATURE_HEADER] ?? ''));
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        receiver.refused += 1;
        res.writeHead(401).end();
        return;
      }
      const event = NotificationEvent.parse(JSON.parse(body));
      receiver.received.push(event);
      options.onEvent?.(event);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${port}/notify`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
