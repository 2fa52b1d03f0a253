/**
 * The test broker itself: the parts of the Service Bus dialect that test/shared/servicebus.test.ts does not
 * already exercise through the JobQueue (batches, queues, receiveAndDelete, unknown entities, properties to
 * modify, duplicate windows, filters) and the raw `$cbs` / `$management` protocol.
 */
import { randomUUID } from 'node:crypto';
import rhea from 'rhea';
import type { Connection, Message } from 'rhea';
import { ServiceBusClient, isServiceBusError } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceBusBroker, compileFilter, type InspectedMessage } from '../../dev/servicebus-broker.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A bare AMQP request/response client, to check the wire protocol without the SDK in between. */
async function rawRequest(port: number, address: string, request: Message): Promise<Message> {
  const container = rhea.create_container();
  const connection: Connection = container.connect({ host: '127.0.0.1', port, reconnect: false });
  try {
    const replyTo = randomUUID();
    const response = new Promise<Message>((resolve, reject) => {
      connection.on('message', (context) => resolve(context.message!));
      connection.on('receiver_error', (context) => reject(context.receiver?.error));
      connection.on('sender_error', (context) => reject(context.sender?.error));
    });
    connection.open_receiver({ name: replyTo, source: { address }, target: { address: replyTo } });
    const sender = connection.open_sender({ target: { address } });
    sender.once('sendable', () => sender.send({ message_id: randomUUID(), reply_to: replyTo, ...request }));
    return await response;
  } finally {
    connection.close();
  }
}

const inspectedWith = (applicationProperties: Record<string, unknown>): InspectedMessage => ({
  messageId: 'm',
  sequenceNumber: 1,
  deliveryCount: 0,
  subject: undefined,
  contentType: undefined,
  applicationProperties,
  body: undefined,
  locked: false,
});

describe('compileFilter (SQL filter subset)', () => {
  it('matches equality on application properties, AND-ed, with or without the user. prefix', () => {
    const filter = compileFilter("serverId = 'a''b' AND user.tier = 2");
    expect(filter(inspectedWith({ serverId: "a'b", tier: 2 }))).toBe(true);
    expect(filter(inspectedWith({ serverId: "a'b", tier: 3 }))).toBe(false);
    expect(filter(inspectedWith({ tier: 2 }))).toBe(false);
  });

  it('1=1 and no filter match everything; a function is used as is', () => {
    expect(compileFilter('1=1')(inspectedWith({}))).toBe(true);
    expect(compileFilter(undefined)(inspectedWith({}))).toBe(true);
    expect(compileFilter((m) => m.applicationProperties.x === 1)(inspectedWith({ x: 2 }))).toBe(false);
  });

  it('refuses syntax it does not implement instead of matching wrongly', () => {
    expect(() => compileFilter("serverId = 'a' OR serverId = 'b'")).toThrow(/unsupported/);
    expect(() => compileFilter("serverId LIKE 'a%'")).toThrow(/unsupported/);
  });
});

describe('ServiceBusBroker with the real SDK', () => {
  let broker: ServiceBusBroker;
  let client: ServiceBusClient;

  beforeAll(async () => {
    broker = await ServiceBusBroker.start({
      lockDurationMs: 5_000,
      queues: [{ name: 'work' }, { name: 'dedupe-off', duplicateDetectionWindowMs: 0 }, { name: 'dedupe-short', duplicateDetectionWindowMs: 300 }],
      topics: [{ name: 'events', subscriptions: [{ name: 'all' }] }],
    });
    client = new ServiceBusClient(broker.connectionString);
  });

  afterAll(async () => {
    await client?.close();
    await broker?.close();
  });

  it('splits batches (array sends and createMessageBatch) into messages and gives id-less messages an id', async () => {
    const sender = client.createSender('events');
    await sender.sendMessages([{ body: 'one' }, { body: 'two', messageId: 'fixed-id' }]);
    const batch = await sender.createMessageBatch();
    expect(batch.maxSizeInBytes).toBe(256 * 1024); // the advertised max message size
    expect(batch.tryAddMessage({ body: { n: 3 } })).toBe(true);
    expect(batch.tryAddMessage({ body: { n: 4 } })).toBe(true);
    await sender.sendMessages(batch);

    const messages = broker.messages('events', 'all');
    expect(messages.map((m) => m.body)).toEqual(['one', 'two', { n: 3 }, { n: 4 }]);
    expect(messages[1]!.messageId).toBe('fixed-id');
    const ids = messages.map((m) => m.messageId);
    expect(new Set(ids).size).toBe(4);
    expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true);

    const receiver = client.createReceiver('events', 'all', { receiveMode: 'receiveAndDelete' });
    const received = await receiver.receiveMessages(10, { maxWaitTimeInMs: 1_000 });
    expect(received.map((m) => m.messageId)).toEqual(ids);
    expect(received.map((m) => m.sequenceNumber?.toNumber())).toEqual(messages.map((m) => m.sequenceNumber));
    await receiver.close();
  });

  it('exists tells which queues and subscriptions are there', () => {
    expect([broker.exists('work'), broker.exists('events', 'all')]).toEqual([true, true]);
    expect([broker.exists('events'), broker.exists('events', 'nope'), broker.exists('nope', 'all')]).toEqual([false, false, false]);
    expect(() => broker.counts('events', 'nope')).toThrow(/no subscription/);
  });

  it('receiveAndDelete removes a message as it is delivered; nothing is locked', async () => {
    await client.createSender('work').sendMessages({ body: 'gone on delivery' });
    const receiver = client.createReceiver('work', { receiveMode: 'receiveAndDelete' });
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(message?.body).toBe('gone on delivery');
    expect(message?.lockToken).toBeUndefined();
    expect(broker.counts('work')).toEqual({ active: 0, locked: 0, deadLettered: 0 });
    await receiver.close();
  });

  it('abandon with properties to modify changes the application properties of the redelivered message', async () => {
    await client.createSender('work').sendMessages({ body: 'retry me', applicationProperties: { attempt: 'first' } });
    const receiver = client.createReceiver('work');
    const [first] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    await receiver.abandonMessage(first!, { attempt: 'second', reason: 'busy' });
    const [again] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect(again?.applicationProperties).toEqual({ attempt: 'second', reason: 'busy' });
    expect(again?.deliveryCount).toBe(1);
    await receiver.completeMessage(again!);
    await receiver.close();
  });

  it('a queue dead-letter queue is receivable with subQueueType deadLetter', async () => {
    await client.createSender('work').sendMessages({ body: 'poison', messageId: 'poison-1' });
    const receiver = client.createReceiver('work');
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    await receiver.deadLetterMessage(message!, { deadLetterReason: 'Poison', deadLetterErrorDescription: 'cannot parse' });
    const deadLetters = client.createReceiver('work', { subQueueType: 'deadLetter' });
    const [dead] = await deadLetters.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    expect([dead?.messageId, dead?.deadLetterReason, dead?.deadLetterSource]).toEqual(['poison-1', 'Poison', 'work']);
    await deadLetters.completeMessage(dead!);
    await Promise.all([receiver.close(), deadLetters.close()]);
  });

  it('unknown entities fail with MessagingEntityNotFound for senders and receivers', async () => {
    const sendError = await client
      .createSender('nope')
      .sendMessages({ body: 1 })
      .catch((e: unknown) => e);
    expect(isServiceBusError(sendError) && sendError.code).toBe('MessagingEntityNotFound');
    const receiveError = await client
      .createReceiver('events', 'nope')
      .receiveMessages(1, { maxWaitTimeInMs: 500 })
      .catch((e: unknown) => e);
    expect(isServiceBusError(receiveError) && receiveError.code).toBe('MessagingEntityNotFound');
  });

  it('refuses session receivers instead of ignoring the session', async () => {
    const error = await client.acceptSession('work', 'session-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(String(error)).toMatch(/sessions/);
  });

  it('duplicate detection can be off, and forgets an id once its window has passed', async () => {
    await client.createSender('dedupe-off').sendMessages([{ body: 1, messageId: 'same' }, { body: 2, messageId: 'same' }]);
    expect(broker.counts('dedupe-off').active).toBe(2);

    const sender = client.createSender('dedupe-short');
    await sender.sendMessages({ body: 1, messageId: 'same' });
    await sender.sendMessages({ body: 2, messageId: 'same' });
    expect(broker.messages('dedupe-short').map((m) => m.body)).toEqual([1]);
    await sleep(400);
    await sender.sendMessages({ body: 3, messageId: 'same' });
    expect(broker.messages('dedupe-short').map((m) => m.body)).toEqual([1, 3]);
  });
});

describe('ServiceBusBroker stats', () => {
  it('counts sends, fan-out to subscriptions, deliveries, settlements, renewals and its own CPU', async () => {
    const broker = await ServiceBusBroker.start({
      lockDurationMs: 5_000,
      topics: [{ name: 'jobs', subscriptions: [{ name: 'a', filter: "serverId = 'a'" }, { name: 'b', filter: "serverId = 'b'" }, { name: 'all' }] }],
    });
    const client = new ServiceBusClient(broker.connectionString);
    try {
      expect(broker.stats()).toMatchObject({ sent: 0, enqueued: 0, delivered: 0, cpuMs: 0 });
      await client.createSender('jobs').sendMessages([
        { body: 1, applicationProperties: { serverId: 'a' } },
        { body: 2, applicationProperties: { serverId: 'b' } },
      ]);
      const receiver = client.createReceiver('jobs', 'a');
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
      await receiver.renewMessageLock(message!);
      await receiver.completeMessage(message!);
      const other = client.createReceiver('jobs', 'b');
      const [second] = await other.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
      await other.abandonMessage(second!);
      const stats = broker.stats();
      // Two messages sent; each reaches its own subscription and `all`: four copies.
      expect(stats).toMatchObject({ sent: 2, enqueued: 4, completed: 1, abandoned: 1, lockRenewals: 1, deadLettered: 0 });
      expect(stats.delivered).toBeGreaterThanOrEqual(2);
      expect(stats.managementRequests).toBeGreaterThanOrEqual(1);
      expect(stats.tokenPuts).toBeGreaterThanOrEqual(3); // a token per link: the sender and both receivers
      expect(stats.connectionsOpened).toBe(1);
      expect(stats.cpuMs).toBeGreaterThan(0);
      // A copy, not the live counters.
      stats.sent = 99;
      expect(broker.stats().sent).toBe(2);
      await receiver.close();
      await other.close();
    } finally {
      await client.close();
      await broker.close();
    }
  });
});

describe('ServiceBusBroker $cbs and $management on the wire', () => {
  let broker: ServiceBusBroker;
  let client: ServiceBusClient;

  beforeAll(async () => {
    broker = await ServiceBusBroker.start({ lockDurationMs: 5_000, queues: [{ name: 'q' }] });
    client = new ServiceBusClient(broker.connectionString);
  });

  afterAll(async () => {
    await client?.close();
    await broker?.close();
  });

  /** Receives one peek-locked message with the SDK (its link stays open) and returns it with its lock token bytes. */
  async function lockedMessage(body: string) {
    await client.createSender('q').sendMessages({ body });
    const receiver = client.createReceiver('q', { maxAutoLockRenewalDurationInMs: 0 });
    const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 2_000 });
    return { receiver, message: message!, lockTokens: [rhea.string_to_uuid(message!.lockToken!)] };
  }

  const management = (operation: string, body: Record<string, unknown>) =>
    rawRequest(broker.port, 'q/$management', {
      application_properties: { operation },
      body: { ...body, 'lock-tokens': rhea.types.wrap_array(body['lock-tokens'] as Buffer[], 0x98, undefined) },
    });

  it('$cbs put-token answers 202 with the request message id as correlation id', async () => {
    const messageId = randomUUID();
    const response = await rawRequest(broker.port, '$cbs', {
      message_id: messageId,
      application_properties: { operation: 'put-token', type: 'jwt', name: 'sb://127.0.0.1/q' },
      body: 'token',
    });
    expect(response.application_properties?.['status-code']).toBe(202);
    expect(response.correlation_id).toBe(messageId);
  });

  it('renew-lock returns a later expiry; update-disposition completes through $management', async () => {
    const { receiver, message, lockTokens } = await lockedMessage('settle via management');
    const renewed = await management('com.microsoft:renew-lock', { 'lock-tokens': lockTokens });
    expect(renewed.application_properties?.['status-code']).toBe(200);
    const [expiry] = renewed.body.expirations as Date[];
    expect(expiry!.getTime()).toBeGreaterThan(message.lockedUntilUtc!.getTime());

    const completed = await management('com.microsoft:update-disposition', {
      'lock-tokens': lockTokens,
      'disposition-status': 'completed',
    });
    expect(completed.application_properties?.['status-code']).toBe(200);
    expect(broker.counts('q')).toEqual({ active: 0, locked: 0, deadLettered: 0 });
    await receiver.close();
  });

  it('update-disposition suspended dead-letters with reason and description', async () => {
    const { receiver, lockTokens } = await lockedMessage('dead-letter via management');
    const response = await management('com.microsoft:update-disposition', {
      'lock-tokens': lockTokens,
      'disposition-status': 'suspended',
      'deadletter-reason': 'Broken',
      'deadletter-description': 'by management',
    });
    expect(response.application_properties?.['status-code']).toBe(200);
    expect(broker.deadLetters('q')).toMatchObject([
      { body: 'dead-letter via management', deadLetterReason: 'Broken', deadLetterErrorDescription: 'by management' },
    ]);
    await receiver.close();
  });

  it('an unknown lock token is 410 message-lock-lost; an unsupported operation is 501', async () => {
    const lost = await management('com.microsoft:renew-lock', { 'lock-tokens': [rhea.string_to_uuid(randomUUID())] });
    expect(lost.application_properties).toMatchObject({ 'status-code': 410, 'error-condition': 'com.microsoft:message-lock-lost' });

    const unsupported = await management('com.microsoft:peek-message', { 'lock-tokens': [] });
    expect(unsupported.application_properties).toMatchObject({ 'status-code': 501, 'error-condition': 'amqp:not-implemented' });
  });
});
