/**
 * A small AMQP 1.0 broker that stands in for Azure Service Bus in tests and in the local sandbox
 * (Microsoft's emulator is Docker-only). Built on `rhea`, it speaks enough of the Service Bus dialect for the
 * REAL `@azure/service-bus` 7.9.x client, connected with
 * `Endpoint=sb://127.0.0.1:<port>;SharedAccessKeyName=test;SharedAccessKey=<anything>;UseDevelopmentEmulator=true`
 * (plain TCP, no TLS).
 *
 * Supported:
 * - `$cbs` put-token: any token is accepted (status-code 202, correlation id = request message id).
 * - Queues, and topics with subscriptions. Entities are declared up front (`topics`/`queues` options or
 *   `createTopic`/`createSubscription`/`createQueue`); attaching to an unknown entity fails with `amqp:not-found`
 *   (the SDK's MessagingEntityNotFound), as in Azure.
 * - Subscription filters: a function over the message, or a SQL-filter subset:
 *   `name = 'text'` / `name = 123` clauses joined by AND (name = an application property, optionally `user.name`),
 *   or `1=1`. Anything else throws when the subscription is created. No filter = every message.
 * - Send: single messages and batches (`sendMessages([...])`, `createMessageBatch()`: the batch arrives as one
 *   undecoded message and is split here). A message id is assigned when the sender gave none.
 *   A max message size is advertised on attach (default 256 KiB, as Standard tier).
 * - Duplicate detection on messageId within a window per topic/queue (default 10 minutes; 0 turns it off):
 *   a duplicate is accepted and dropped, as in Azure.
 * - Peek-lock receive: lock tokens are the 16-byte delivery tags (GUID byte order), `x-opt-locked-until`,
 *   `x-opt-sequence-number` and `x-opt-enqueued-time` annotations, a configurable lock duration.
 *   Lock expiry makes the message available again with its delivery count + 1.
 *   receiveAndDelete receive (pre-settled deliveries) also works.
 * - Delivery count as Azure sends it on the wire: the number of earlier deliveries, so the JS SDK reports
 *   `deliveryCount` 0 on the first delivery and 1 after one abandon (the .NET SDK adds 1; the JS SDK does not).
 * - Settlement through link dispositions and through `$management` `com.microsoft:update-disposition`:
 *   complete, abandon (with properties to modify), dead-letter (reason + description, no error sent back).
 *   Settling with a lost lock fails with `com.microsoft:message-lock-lost` (the SDK's MessageLockLost).
 * - `$management` `com.microsoft:renew-lock` (the SDK's renewMessageLock and its auto lock renewal).
 * - Max delivery count (default 10): the delivery that reaches it and is not completed moves the message to the
 *   entity's dead-letter queue with reason `MaxDeliveryCountExceeded`.
 * - Dead-letter queues `<queue>/$DeadLetterQueue` and `<topic>/Subscriptions/<sub>/$DeadLetterQueue`, receivable
 *   with the SDK's `subQueueType: 'deadLetter'`; DeadLetterReason/DeadLetterErrorDescription application
 *   properties and the `x-opt-deadletter-source` annotation are set as in Azure.
 * - Locks are tied to the receive link: when the link, its session or the connection goes away, the messages it
 *   held become available again at once (delivery count + 1) and their lock tokens stop working.
 * - Inspection for tests: `messages()`, `deadLetters()`, `counts()` (these throw for an unknown entity; ask
 *   `exists()` first), `stats()` (totals: messages sent, delivered, settled, lock renewals, the broker's own CPU
 *   time), `dropConnections()` (a lost network or a crashed runner), `close()`.
 *
 * Not supported (the SDK gets `amqp:not-implemented` or the feature is silently absent): sessions, defer /
 * receiveDeferredMessages, scheduled messages, peek, rules management, transactions, message TTL expiry,
 * auto-forwarding, partitioning. Tokens are not checked: authorisation is not what this fixture tests.
 */
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import rhea from 'rhea';
import type { Connection, Delivery, EventContext, Message, Receiver, Sender, Session } from 'rhea';

/** AMQP message format of a Service Bus batch: a message whose data sections are encoded messages. */
const BATCH_MESSAGE_FORMAT = 0x80013700;
const CBS_ADDRESS = '$cbs';
const MANAGEMENT_SUFFIX = '/$management';
const DEAD_LETTER_SUFFIX = '/$DeadLetterQueue';
const DEFAULT_MAX_MESSAGE_SIZE = 256 * 1024;
/** Source filter a session receiver attaches with. */
const SESSION_FILTER = 'com.microsoft:session-filter';

const condition = {
  notFound: 'amqp:not-found',
  notImplemented: 'amqp:not-implemented',
  lockLost: 'com.microsoft:message-lock-lost',
  deadLetter: 'com.microsoft:dead-letter',
} as const;

export type MessageFilter = string | ((message: InspectedMessage) => boolean);

export interface EntityOptions {
  /** How long a peek-lock lasts. Azure's default is 60 s; tests use a second or two. */
  lockDurationMs?: number;
  /** Deliveries allowed before the message is dead-lettered with `MaxDeliveryCountExceeded`. Default 10. */
  maxDeliveryCount?: number;
}

export interface SubscriptionOptions extends EntityOptions {
  /** Which messages the subscription gets; see the file header for the supported SQL subset. */
  filter?: MessageFilter;
}

export interface TopicOptions {
  /** Duplicate detection window on messageId; 0 turns it off. Default 10 minutes. */
  duplicateDetectionWindowMs?: number;
}

export interface QueueOptions extends EntityOptions, TopicOptions {}

export interface BrokerOptions extends EntityOptions, TopicOptions {
  topics?: Array<{ name: string; subscriptions?: Array<{ name: string } & SubscriptionOptions> } & TopicOptions>;
  queues?: Array<{ name: string } & QueueOptions>;
  /** Advertised on every link attach; the SDK sizes batches with it. Default 256 KiB. */
  maxMessageSizeBytes?: number;
  /** Fixed port (the local sandbox, so a runner's settings can point at it); default: a random free port. */
  port?: number;
}

/** What the inspection API returns: a snapshot, detached from the broker's own state. */
export interface InspectedMessage {
  messageId: string | undefined;
  sequenceNumber: number;
  /** Earlier deliveries that ended without completion: what the SDK reports as `deliveryCount`. */
  deliveryCount: number;
  subject: string | undefined;
  contentType: string | undefined;
  applicationProperties: Record<string, unknown>;
  /** JSON bodies parsed, other binary bodies as Buffer, AMQP value bodies as they are. */
  body: unknown;
  locked: boolean;
  deadLetterReason?: string;
  deadLetterErrorDescription?: string;
}

/** What went through the broker since it started (the scale bench's per-job message counts). */
export interface BrokerStats {
  /** Messages taken from senders (each message of a batch counts, duplicates too). */
  sent: number;
  /** Copies stored for receivers: a topic message counts once per subscription whose filter takes it. */
  enqueued: number;
  /** Peek-lock and receive-and-delete deliveries. */
  delivered: number;
  completed: number;
  abandoned: number;
  deadLettered: number;
  /** Locks renewed (one request may renew several). */
  lockRenewals: number;
  /** Requests on an entity's `$management` node (lock renewal, settlement by lock token, …). */
  managementRequests: number;
  /** `$cbs` put-token requests (one per connection and entity, renewed before the token expires). */
  tokenPuts: number;
  connectionsOpened: number;
  /** CPU time (ms) spent handling the input of the broker's connections, measured around each socket read. */
  cpuMs: number;
}

export interface EntityCounts {
  /** Waiting to be delivered. */
  active: number;
  /** Delivered and locked, not settled yet. */
  locked: number;
  deadLettered: number;
}

interface StoredMessage {
  sequenceNumber: number;
  enqueuedAt: Date;
  deliveryCount: number;
  /** The message as the sender sent it (header, properties, application properties, annotations, body). */
  amqp: Message;
  deadLetterSource?: string;
}

interface Lock {
  token: string;
  store: MessageStore;
  message: StoredMessage;
  link: Sender;
  delivery: Delivery;
  expiresAt: Date;
  timer: NodeJS.Timeout;
}

type Outcome = 'accepted' | 'released' | 'rejected' | 'modified';

/** The fields of the receiver's outcome we read (rhea has already unwrapped it). */
interface RemoteOutcome {
  error?: { info?: Record<string, unknown> };
  undeliverable_here?: boolean;
  message_annotations?: Record<string, unknown>;
}

type Settlement =
  | { kind: 'complete' }
  | { kind: 'abandon'; propertiesToModify?: Record<string, unknown> }
  | { kind: 'deadLetter'; reason?: string; description?: string; propertiesToModify?: Record<string, unknown> };

/** A queue, a subscription or a dead-letter queue: somewhere messages wait for receivers. */
class MessageStore {
  readonly available: StoredMessage[] = [];
  readonly locks = new Set<Lock>();
  readonly receivers: Sender[] = [];
  private nextSequenceNumber = 1;

  constructor(
    readonly path: string,
    readonly lockDurationMs: number,
    /** Infinity for dead-letter queues: nothing is dead-lettered twice. */
    readonly maxDeliveryCount: number,
    readonly deadLetterQueue: MessageStore | undefined,
    readonly accepts: (message: InspectedMessage) => boolean = () => true,
  ) {}

  enqueue(amqp: Message, deliveryCount = 0, deadLetterSource?: string): void {
    this.available.push({
      sequenceNumber: this.nextSequenceNumber++,
      enqueuedAt: new Date(),
      deliveryCount,
      amqp,
      deadLetterSource,
    });
  }

  /** Puts a message back in sequence order, as Azure does after an abandon or a lost lock. */
  putBack(message: StoredMessage): void {
    const index = this.available.findIndex((m) => m.sequenceNumber > message.sequenceNumber);
    this.available.splice(index === -1 ? this.available.length : index, 0, message);
  }

  /** The next attached receiver link with credit, round robin so competing consumers share the work. */
  nextReceiver(): Sender | undefined {
    for (let i = 0; i < this.receivers.length; i++) {
      const link = this.receivers.shift()!;
      this.receivers.push(link);
      if (link.is_open() && link.sendable()) return link;
    }
    return undefined;
  }
}

interface Topic {
  name: string;
  subscriptions: Map<string, MessageStore>;
  duplicates: DuplicateDetector;
}

interface Queue {
  store: MessageStore;
  duplicates: DuplicateDetector;
}

/** Remembers message ids for the detection window; `isDuplicate` also records the id. */
class DuplicateDetector {
  private readonly seen = new Map<string, number>();
  constructor(private readonly windowMs: number) {}

  isDuplicate(messageId: string): boolean {
    if (this.windowMs <= 0) return false;
    const now = Date.now();
    for (const [id, expiresAt] of this.seen) if (expiresAt <= now) this.seen.delete(id);
    if (this.seen.has(messageId)) return true;
    this.seen.set(messageId, now + this.windowMs);
    return false;
  }
}

/** rhea internals the typings leave out. */
interface ConnectionInternals {
  socket: net.Socket;
  abort_socket(socket: net.Socket): void;
}
interface SenderInternals {
  set_drained(drained: boolean): void;
  local: { attach: { snd_settle_mode?: number; rcv_settle_mode?: number } };
}
interface RheaOutcomes {
  accepted(): { described(): unknown };
  rejected(fields: { error: { condition: string; description: string } }): { described(): unknown };
}
const outcomes = rhea.message as unknown as RheaOutcomes;

export class ServiceBusBroker {
  private readonly topics = new Map<string, Topic>();
  private readonly queues = new Map<string, Queue>();
  private readonly locksByToken = new Map<string, Lock>();
  private readonly lockByDelivery = new Map<Delivery, Lock>();
  private readonly sockets = new Set<net.Socket>();
  private readonly connections = new Set<Connection>();
  private readonly counters: BrokerStats = {
    sent: 0,
    enqueued: 0,
    delivered: 0,
    completed: 0,
    abandoned: 0,
    deadLettered: 0,
    lockRenewals: 0,
    managementRequests: 0,
    tokenPuts: 0,
    connectionsOpened: 0,
    cpuMs: 0,
  };

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly defaults: Required<EntityOptions> & Required<TopicOptions>,
  ) {}

  /** Starts a broker on 127.0.0.1 with a random port. */
  static async start(options: BrokerOptions = {}): Promise<ServiceBusBroker> {
    const container = rhea.create_container({ id: 'dbdist-test-servicebus-broker' });
    const maxMessageSize = options.maxMessageSizeBytes ?? DEFAULT_MAX_MESSAGE_SIZE;
    const server = container.listen({
      host: '127.0.0.1',
      port: options.port ?? 0,
      // Sending on the broker side: we settle explicitly after applying the receiver's outcome, and keep
      // `modified` apart from `released` (abandon may carry properties to modify).
      sender_options: { autosettle: false, treat_modified_as_released: false, max_message_size: maxMessageSize },
      // Receiving on the broker side: accept only once the message is stored.
      receiver_options: { autoaccept: false, max_message_size: maxMessageSize },
    } as never) as net.Server;
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    const port = (server.address() as net.AddressInfo).port;
    const broker = new ServiceBusBroker(server, port, {
      lockDurationMs: options.lockDurationMs ?? 60_000,
      maxDeliveryCount: options.maxDeliveryCount ?? 10,
      duplicateDetectionWindowMs: options.duplicateDetectionWindowMs ?? 10 * 60_000,
    });
    server.on('connection', (socket: net.Socket) => {
      broker.sockets.add(socket);
      socket.once('close', () => broker.sockets.delete(socket));
      broker.meterInput(socket);
    });
    broker.listen(container);
    for (const topic of options.topics ?? []) {
      broker.createTopic(topic.name, topic);
      for (const subscription of topic.subscriptions ?? []) {
        broker.createSubscription(topic.name, subscription.name, subscription);
      }
    }
    for (const queue of options.queues ?? []) broker.createQueue(queue.name, queue);
    return broker;
  }

  /** A connection string the real SDK accepts for this broker. */
  get connectionString(): string {
    return `Endpoint=sb://127.0.0.1:${this.port};SharedAccessKeyName=test;SharedAccessKey=test-key;UseDevelopmentEmulator=true`;
  }

  createTopic(name: string, options: TopicOptions = {}): void {
    if (this.topics.has(name) || this.queues.has(name)) throw new Error(`entity ${name} already exists`);
    const windowMs = options.duplicateDetectionWindowMs ?? this.defaults.duplicateDetectionWindowMs;
    this.topics.set(name, { name, subscriptions: new Map(), duplicates: new DuplicateDetector(windowMs) });
  }

  createSubscription(topicName: string, name: string, options: SubscriptionOptions = {}): void {
    const topic = this.topic(topicName);
    if (topic.subscriptions.has(name)) throw new Error(`subscription ${topicName}/${name} already exists`);
    const path = `${topicName}/Subscriptions/${name}`;
    topic.subscriptions.set(name, this.newStore(path, options, compileFilter(options.filter)));
  }

  createQueue(name: string, options: QueueOptions = {}): void {
    if (this.topics.has(name) || this.queues.has(name)) throw new Error(`entity ${name} already exists`);
    const windowMs = options.duplicateDetectionWindowMs ?? this.defaults.duplicateDetectionWindowMs;
    this.queues.set(name, { store: this.newStore(name, options), duplicates: new DuplicateDetector(windowMs) });
  }

  /** Names of a topic's subscriptions. */
  subscriptionsOf(topicName: string): string[] {
    return [...this.topic(topicName).subscriptions.keys()];
  }

  /** Whether a queue, or a topic's subscription (`subscription` given), exists. The inspection calls throw if not. */
  exists(topicOrQueue: string, subscription?: string): boolean {
    return subscription === undefined
      ? this.queues.has(topicOrQueue)
      : this.topics.get(topicOrQueue)?.subscriptions.has(subscription) === true;
  }

  /** Messages waiting in or locked from a subscription (`subscription` given) or a queue, in sequence order. */
  messages(topicOrQueue: string, subscription?: string): InspectedMessage[] {
    return snapshot(this.store(topicOrQueue, subscription));
  }

  /** Messages in the dead-letter queue of a subscription or queue, with their reasons and delivery counts. */
  deadLetters(topicOrQueue: string, subscription?: string): InspectedMessage[] {
    return snapshot(this.store(topicOrQueue, subscription).deadLetterQueue!);
  }

  counts(topicOrQueue: string, subscription?: string): EntityCounts {
    const store = this.store(topicOrQueue, subscription);
    const deadLetters = store.deadLetterQueue!;
    return {
      active: store.available.length,
      locked: store.locks.size,
      deadLettered: deadLetters.available.length + deadLetters.locks.size,
    };
  }

  /** Totals since the broker started (a copy). */
  stats(): BrokerStats {
    return { ...this.counters };
  }

  /** Cuts every client connection at the TCP level, as a network failure or a killed process would. */
  dropConnections(): void {
    // rhea does not notice a socket destroyed under it; abort_socket destroys it and runs its disconnect
    // handling, which frees the locks those connections held.
    for (const connection of this.connections) {
      const internals = connection as unknown as ConnectionInternals;
      internals.abort_socket(internals.socket);
    }
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    for (const lock of this.locksByToken.values()) clearTimeout(lock.timer);
    this.locksByToken.clear();
    this.lockByDelivery.clear();
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- entities -------------------------------------------------------------------------------------------

  private newStore(path: string, options: EntityOptions, filter?: (m: InspectedMessage) => boolean): MessageStore {
    const lockDurationMs = options.lockDurationMs ?? this.defaults.lockDurationMs;
    const deadLetterQueue = new MessageStore(path + DEAD_LETTER_SUFFIX, lockDurationMs, Infinity, undefined);
    const maxDeliveryCount = options.maxDeliveryCount ?? this.defaults.maxDeliveryCount;
    return new MessageStore(path, lockDurationMs, maxDeliveryCount, deadLetterQueue, filter);
  }

  private topic(name: string): Topic {
    const topic = this.topics.get(name);
    if (!topic) throw new Error(`no topic ${name}`);
    return topic;
  }

  private store(topicOrQueue: string, subscription?: string): MessageStore {
    if (subscription === undefined) {
      const queue = this.queues.get(topicOrQueue);
      if (!queue) throw new Error(`no queue ${topicOrQueue}`);
      return queue.store;
    }
    const store = this.topic(topicOrQueue).subscriptions.get(subscription);
    if (!store) throw new Error(`no subscription ${topicOrQueue}/${subscription}`);
    return store;
  }

  /** The store a receive link reads from: a queue, a subscription, or the dead-letter queue of either. */
  private storeAt(address: string): MessageStore | undefined {
    const deadLetter = address.endsWith(DEAD_LETTER_SUFFIX);
    const entityPath = deadLetter ? address.slice(0, -DEAD_LETTER_SUFFIX.length) : address;
    const match = /^([^/]+)\/subscriptions\/([^/]+)$/i.exec(entityPath);
    const store = match
      ? this.topics.get(match[1]!)?.subscriptions.get(match[2]!)
      : this.queues.get(entityPath)?.store;
    return deadLetter ? store?.deadLetterQueue : store;
  }

  // ---- AMQP wiring ----------------------------------------------------------------------------------------

  /**
   * Counts the CPU time of each read on `socket`: rhea decodes the frames and runs every broker handler
   * synchronously inside it, so this is the broker's work in a shared process (what a bench subtracts).
   */
  private meterInput(socket: net.Socket): void {
    const emit = socket.emit.bind(socket);
    socket.emit = ((event: string | symbol, ...args: unknown[]) => {
      if (event !== 'data') return emit(event, ...args);
      const before = process.cpuUsage();
      try {
        return emit(event, ...args);
      } finally {
        const used = process.cpuUsage(before);
        this.counters.cpuMs += (used.user + used.system) / 1000;
      }
    }) as typeof socket.emit;
  }

  private listen(container: ReturnType<typeof rhea.create_container>): void {
    container.on('receiver_open', (context: EventContext) => this.onClientSenderAttached(context.receiver!));
    container.on('sender_open', (context: EventContext) => this.onClientReceiverAttached(context.sender!));
    container.on('message', (context: EventContext) => this.onMessage(context));
    container.on('sendable', (context: EventContext) => this.pumpLink(context.sender!));
    container.on('sender_draining', (context: EventContext) => {
      // A batching receiver drains its leftover credit when it stops waiting: send what we have, then give
      // back the rest of the credit, or the SDK times out and closes the link.
      this.pumpLink(context.sender!);
      (context.sender as unknown as SenderInternals).set_drained(true);
    });
    for (const outcome of ['accepted', 'released', 'rejected', 'modified'] as const) {
      container.on(outcome, (context: EventContext) => this.onDisposition(outcome, context.delivery!));
    }
    container.on('sender_close', (context: EventContext) => this.forgetLinks((link) => link === context.sender));
    container.on('session_close', (context: EventContext) =>
      this.forgetLinks((link) => link.session === context.session),
    );
    container.on('connection_open', (context: EventContext) => {
      this.counters.connectionsOpened += 1;
      this.connections.add(context.connection);
    });
    const onConnectionGone = (context: EventContext): void => {
      this.connections.delete(context.connection);
      this.forgetLinks((link) => link.connection === context.connection);
    };
    container.on('connection_close', onConnectionGone);
    container.on('disconnected', onConnectionGone);
    // A client that vanishes mid-frame is normal in tests (dropConnections); don't let it crash the process.
    container.on('error', () => undefined);
    container.on('connection_error', () => undefined);
  }

  /** The client attached a sender: to `$cbs`, to an entity's `$management`, or to a topic or queue. */
  private onClientSenderAttached(link: Receiver): void {
    const address = link.target?.address ?? '';
    link.set_target({ address });
    const known =
      address === CBS_ADDRESS ||
      (address.endsWith(MANAGEMENT_SUFFIX) && this.storeAt(address.slice(0, -MANAGEMENT_SUFFIX.length))) ||
      this.topics.has(address) ||
      this.queues.has(address);
    if (!known) link.close({ condition: condition.notFound, description: `The messaging entity '${address}' could not be found.` });
  }

  /** The client attached a receiver: the reply side of `$cbs`/`$management`, or a queue or subscription. */
  private onClientReceiverAttached(link: Sender): void {
    const address = link.source?.address ?? '';
    link.set_source({ address });
    // Mirror the client's settle modes: pre-settled (receiveAndDelete) or settled by us after its outcome.
    const attach = (link as unknown as SenderInternals).local.attach;
    attach.snd_settle_mode = link.snd_settle_mode;
    attach.rcv_settle_mode = link.rcv_settle_mode;
    if (address === CBS_ADDRESS || address.endsWith(MANAGEMENT_SUFFIX)) return;
    const store = this.storeAt(address);
    if (!store) {
      link.close({ condition: condition.notFound, description: `The messaging entity '${address}' could not be found.` });
      return;
    }
    if (link.source?.filter?.[SESSION_FILTER] !== undefined) {
      // Better a clear refusal than session receivers that silently get every message.
      link.close({ condition: condition.notImplemented, description: 'The test broker does not support sessions.' });
      return;
    }
    store.receivers.push(link);
  }

  private onMessage(context: EventContext): void {
    const link = context.receiver!;
    const delivery = context.delivery!;
    const address = link.target?.address ?? '';
    if (address === CBS_ADDRESS || address.endsWith(MANAGEMENT_SUFFIX)) {
      delivery.accept();
      this.reply(link, context.message!, this.answer(address, context.message!));
      return;
    }
    const batch = (context as { format?: number }).format === BATCH_MESSAGE_FORMAT;
    const messages = batch ? splitBatch(context.message as unknown as Buffer) : [context.message!];
    this.counters.sent += messages.length;
    for (const message of messages) this.publish(address, message);
    delivery.accept();
  }

  private publish(address: string, message: Message): void {
    if (message.message_id === undefined || message.message_id === null) message.message_id = randomUUID();
    const messageId = messageIdText(message.message_id);
    const topic = this.topics.get(address);
    if (topic) {
      if (topic.duplicates.isDuplicate(messageId)) return;
      const inspected = inspect(message);
      for (const store of topic.subscriptions.values()) {
        if (store.accepts(inspected)) {
          this.counters.enqueued += 1;
          store.enqueue(copyMessage(message));
          this.pump(store);
        }
      }
      return;
    }
    const queue = this.queues.get(address)!;
    if (queue.duplicates.isDuplicate(messageId)) return;
    this.counters.enqueued += 1;
    queue.store.enqueue(message);
    this.pump(queue.store);
  }

  // ---- delivery and locks ---------------------------------------------------------------------------------

  private pumpLink(link: Sender): void {
    const store = this.storeAt(link.source?.address ?? '');
    if (store) this.pump(store);
  }

  private pump(store: MessageStore): void {
    while (store.available.length > 0) {
      const link = store.nextReceiver();
      if (!link) return;
      this.deliver(store, link, store.available.shift()!);
    }
  }

  private deliver(store: MessageStore, link: Sender, message: StoredMessage): void {
    const annotations: Record<string, unknown> = {
      ...(message.amqp.message_annotations as Record<string, unknown> | undefined),
      'x-opt-sequence-number': rhea.types.wrap_long(message.sequenceNumber),
      'x-opt-enqueued-time': message.enqueuedAt,
    };
    if (message.deadLetterSource) annotations['x-opt-deadletter-source'] = message.deadLetterSource;
    this.counters.delivered += 1;
    const receiveAndDelete = link.snd_settle_mode === 1;
    if (receiveAndDelete) {
      link.send({ ...message.amqp, delivery_count: message.deliveryCount, message_annotations: annotations });
      return;
    }
    const token = randomUUID();
    const expiresAt = new Date(Date.now() + store.lockDurationMs);
    annotations['x-opt-locked-until'] = expiresAt;
    const delivery = link.send(
      { ...message.amqp, delivery_count: message.deliveryCount, message_annotations: annotations },
      lockTokenTag(token),
    );
    const lock: Lock = {
      token,
      store,
      message,
      link,
      delivery,
      expiresAt,
      timer: setTimeout(() => this.release(lock), store.lockDurationMs),
    };
    store.locks.add(lock);
    this.locksByToken.set(token, lock);
    this.lockByDelivery.set(delivery, lock);
  }

  private dropLock(lock: Lock): void {
    clearTimeout(lock.timer);
    lock.store.locks.delete(lock);
    this.locksByToken.delete(lock.token);
    this.lockByDelivery.delete(lock.delivery);
  }

  /**
   * The lock ended without completion (abandon, expiry, lost link): the delivery counts, and the message
   * either goes back in line or, at the max delivery count, to the dead-letter queue.
   */
  private release(lock: Lock, propertiesToModify?: Record<string, unknown>): void {
    if (!this.locksByToken.has(lock.token)) return;
    this.dropLock(lock);
    const { store, message } = lock;
    message.deliveryCount += 1;
    if (propertiesToModify) {
      message.amqp.application_properties = { ...message.amqp.application_properties, ...propertiesToModify };
    }
    if (message.deliveryCount >= store.maxDeliveryCount) {
      this.deadLetter(store, message, {
        DeadLetterReason: 'MaxDeliveryCountExceeded',
        DeadLetterErrorDescription: `Message could not be consumed after ${store.maxDeliveryCount} delivery attempts.`,
      });
      return;
    }
    store.putBack(message);
    this.pump(store);
  }

  private deadLetter(store: MessageStore, message: StoredMessage, properties: Record<string, unknown>): void {
    this.counters.deadLettered += 1;
    // Dead-lettering a message received from a dead-letter queue leaves it there.
    const deadLetterQueue = store.deadLetterQueue ?? store;
    const amqp = copyMessage(message.amqp);
    amqp.application_properties = { ...amqp.application_properties, ...withoutUndefined(properties) };
    deadLetterQueue.enqueue(amqp, message.deliveryCount, store.path);
    this.pump(deadLetterQueue);
  }

  /** Applies a settlement to a lock; false when the lock is gone (expired, settled, or its link lost). */
  private settle(lock: Lock | undefined, settlement: Settlement): boolean {
    if (!lock || !this.locksByToken.has(lock.token)) return false;
    switch (settlement.kind) {
      case 'complete':
        this.counters.completed += 1;
        this.dropLock(lock);
        break;
      case 'abandon':
        this.counters.abandoned += 1;
        this.release(lock, settlement.propertiesToModify);
        break;
      case 'deadLetter':
        this.dropLock(lock);
        this.deadLetter(lock.store, { ...lock.message, deliveryCount: lock.message.deliveryCount + 1 }, {
          ...settlement.propertiesToModify,
          DeadLetterReason: settlement.reason,
          DeadLetterErrorDescription: settlement.description,
        });
        break;
    }
    return true;
  }

  /** A receiver's outcome on a delivery (peek-lock: it waits for us to settle before it reports success). */
  private onDisposition(outcome: Outcome, delivery: Delivery): void {
    if (delivery.settled) return;
    if (!this.storeAt((delivery.link as Sender).source?.address ?? '')) {
      delivery.update(true, settledOk()); // the client accepted a $cbs/$management response
      return;
    }
    const state = (delivery.remote_state ?? {}) as RemoteOutcome;
    let settlement: Settlement | undefined;
    if (outcome === 'accepted') {
      settlement = { kind: 'complete' };
    } else if (outcome === 'rejected') {
      const info = (state.error?.info ?? {}) as Record<string, unknown>;
      const { DeadLetterReason, DeadLetterErrorDescription, ...propertiesToModify } = info;
      settlement = {
        kind: 'deadLetter',
        reason: DeadLetterReason as string | undefined,
        description: DeadLetterErrorDescription as string | undefined,
        propertiesToModify,
      };
    } else if (outcome === 'modified' && state.undeliverable_here) {
      settlement = undefined; // the SDK's defer: not supported
    } else {
      settlement = { kind: 'abandon', propertiesToModify: state.message_annotations };
    }
    if (!settlement) {
      delivery.update(true, rejected(condition.notImplemented, 'Defer is not supported by the test broker.'));
    } else if (this.settle(this.lockByDelivery.get(delivery), settlement)) {
      delivery.update(true, settledOk());
    } else {
      delivery.update(true, rejected(condition.lockLost, lockLostDescription));
    }
  }

  /** Forgets receive links that went away and frees the locks they held. */
  private forgetLinks(gone: (link: Sender) => boolean): void {
    const stores = [...this.allStores()];
    for (const store of stores) {
      for (let i = store.receivers.length - 1; i >= 0; i--) if (gone(store.receivers[i]!)) store.receivers.splice(i, 1);
    }
    for (const lock of [...this.locksByToken.values()]) if (gone(lock.link)) this.release(lock);
  }

  private *allStores(): Iterable<MessageStore> {
    for (const topic of this.topics.values()) {
      for (const store of topic.subscriptions.values()) yield* [store, store.deadLetterQueue!];
    }
    for (const queue of this.queues.values()) yield* [queue.store, queue.store.deadLetterQueue!];
  }

  // ---- $cbs and $management ---------------------------------------------------------------------------------

  private answer(address: string, request: Message): Response {
    if (address === CBS_ADDRESS) {
      this.counters.tokenPuts += 1;
      return { status: 202, description: 'Accepted' };
    }
    this.counters.managementRequests += 1;
    const store = this.storeAt(address.slice(0, -MANAGEMENT_SUFFIX.length))!;
    const operation = request.application_properties?.operation as string | undefined;
    const body = (request.body ?? {}) as Record<string, unknown>;
    const locks = ((body['lock-tokens'] ?? []) as Buffer[]).map((bytes) => {
      const lock = this.locksByToken.get(rhea.uuid_to_string(bytes));
      return lock?.store === store ? lock : undefined;
    });
    if (locks.length > 0 && locks.some((lock) => lock === undefined)) return lockLostResponse;
    switch (operation) {
      case 'com.microsoft:renew-lock': {
        this.counters.lockRenewals += locks.length;
        const expirations = (locks as Lock[]).map((lock) => this.renew(lock));
        return { status: 200, body: { expirations } };
      }
      case 'com.microsoft:update-disposition': {
        const settlement = settlementFrom(body);
        if (!settlement) return { status: 501, condition: condition.notImplemented, description: 'Defer is not supported.' };
        for (const lock of locks as Lock[]) {
          const delivery = lock.delivery;
          this.settle(lock, settlement);
          if (!delivery.settled) delivery.update(true, settledOk());
        }
        return { status: 200 };
      }
      default:
        return {
          status: 501,
          condition: condition.notImplemented,
          description: `The test broker does not implement ${operation ?? 'this operation'}.`,
        };
    }
  }

  private renew(lock: Lock): Date {
    clearTimeout(lock.timer);
    lock.expiresAt = new Date(Date.now() + lock.store.lockDurationMs);
    lock.timer = setTimeout(() => this.release(lock), lock.store.lockDurationMs);
    return lock.expiresAt;
  }

  /** Sends a response on the client's reply link: the receiver it attached with the reply-to address as name. */
  private reply(requestLink: Receiver, request: Message, response: Response): void {
    const session = requestLink.session as Session & { find_sender(filter: (l: Sender) => boolean): Sender | undefined };
    const replyLink = session.find_sender((link: Sender) => link.name === request.reply_to);
    if (!replyLink) return;
    replyLink.send({
      correlation_id: request.message_id,
      application_properties: withoutUndefined({
        'status-code': response.status,
        'status-description': response.description,
        'error-condition': response.condition,
      }),
      body: response.body ?? {},
    });
  }
}

interface Response {
  status: number;
  description?: string;
  condition?: string;
  body?: Record<string, unknown>;
}

const lockLostDescription =
  'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.';
const lockLostResponse: Response = { status: 410, condition: condition.lockLost, description: lockLostDescription };

function settlementFrom(body: Record<string, unknown>): Settlement | undefined {
  const propertiesToModify = body['properties-to-modify'] as Record<string, unknown> | undefined;
  switch (body['disposition-status']) {
    case 'completed':
      return { kind: 'complete' };
    case 'abandoned':
      return { kind: 'abandon', propertiesToModify };
    case 'suspended':
      return {
        kind: 'deadLetter',
        reason: body['deadletter-reason'] as string | undefined,
        description: body['deadletter-description'] as string | undefined,
        propertiesToModify,
      };
    default:
      return undefined;
  }
}

/**
 * The state we settle a successful outcome with. The SDK only looks for an error in it; echoing the client's
 * `rejected` for a dead-letter would be read as a failure, and no state at all makes rhea log noise.
 */
function settledOk(): unknown {
  return outcomes.accepted().described();
}

function rejected(errorCondition: string, description: string): unknown {
  return outcomes.rejected({ error: { condition: errorCondition, description } }).described();
}

/**
 * The delivery tag for a lock token. The SDK reads the tag as a .NET GUID (first three groups little-endian)
 * and reorders it; swapping those groups is its own inverse, so the same swap turns our token into the tag.
 */
function lockTokenTag(token: string): Buffer {
  const b = rhea.string_to_uuid(token);
  return Buffer.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.subarray(8)]);
}

/** A batch is a message whose data sections are each one encoded message. */
function splitBatch(encoded: Buffer): Message[] {
  const envelope = rhea.message.decode(encoded);
  const sections = envelope.body as { content: Buffer | Buffer[]; multiple?: boolean };
  const parts = sections.multiple ? (sections.content as Buffer[]) : [sections.content as Buffer];
  return parts.map((part) => rhea.message.decode(part) as unknown as Message);
}

function copyMessage(message: Message): Message {
  return {
    ...message,
    application_properties: { ...message.application_properties },
    message_annotations: { ...message.message_annotations },
  } as Message;
}

function messageIdText(id: unknown): string {
  return Buffer.isBuffer(id) && id.length === 16 ? rhea.uuid_to_string(id) : String(id);
}

function withoutUndefined(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined));
}

function inspect(amqp: Message, extra: { sequenceNumber?: number; deliveryCount?: number; locked?: boolean } = {}): InspectedMessage {
  const applicationProperties = { ...(amqp.application_properties as Record<string, unknown> | undefined) };
  return {
    messageId: amqp.message_id === undefined ? undefined : messageIdText(amqp.message_id),
    sequenceNumber: extra.sequenceNumber ?? 0,
    deliveryCount: extra.deliveryCount ?? 0,
    subject: amqp.subject as string | undefined,
    contentType: amqp.content_type as string | undefined,
    applicationProperties,
    body: decodeBody(amqp.body),
    locked: extra.locked ?? false,
    ...(typeof applicationProperties.DeadLetterReason === 'string'
      ? { deadLetterReason: applicationProperties.DeadLetterReason }
      : {}),
    ...(typeof applicationProperties.DeadLetterErrorDescription === 'string'
      ? { deadLetterErrorDescription: applicationProperties.DeadLetterErrorDescription }
      : {}),
  };
}

function snapshot(store: MessageStore): InspectedMessage[] {
  const locked = [...store.locks].map((lock) => ({ message: lock.message, locked: true }));
  const waiting = store.available.map((message) => ({ message, locked: false }));
  return [...locked, ...waiting]
    .sort((a, b) => a.message.sequenceNumber - b.message.sequenceNumber)
    .map(({ message, locked: isLocked }) =>
      inspect(message.amqp, { sequenceNumber: message.sequenceNumber, deliveryCount: message.deliveryCount, locked: isLocked }),
    );
}

/** The SDK sends JSON bodies as one data section of UTF-8 JSON. */
function decodeBody(body: unknown): unknown {
  const section = body as { typecode?: number; content?: unknown } | undefined;
  if (section?.typecode === 0x75 && Buffer.isBuffer(section.content)) {
    try {
      return JSON.parse(section.content.toString('utf8'));
    } catch {
      return section.content;
    }
  }
  return body;
}

/**
 * Compiles a subscription filter. Strings: the SQL-filter subset `name = 'text'` / `name = 123` clauses joined
 * by AND over application properties (`user.` prefix optional), or `1=1`. Unsupported syntax throws.
 */
export function compileFilter(filter: MessageFilter | undefined): (message: InspectedMessage) => boolean {
  if (filter === undefined) return () => true;
  if (typeof filter === 'function') return filter;
  const clauses = filter.split(/\s+AND\s+/i).map((clause) => clause.trim());
  const tests = clauses.map((clause) => {
    if (/^1\s*=\s*1$/.test(clause)) return () => true;
    const match = /^(?:user\.)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:'((?:[^']|'')*)'|(-?\d+(?:\.\d+)?))$/.exec(clause);
    if (!match) throw new Error(`unsupported subscription filter clause: ${clause}`);
    const [, name, text, number] = match;
    const expected = text !== undefined ? text.replace(/''/g, "'") : Number(number);
    return (message: InspectedMessage) => message.applicationProperties[name!] === expected;
  });
  return (message) => tests.every((test) => test(message));
}

/** Same as `ServiceBusBroker.start`, named like the other fixtures' starters. */
export function startServiceBusBroker(options: BrokerOptions = {}): Promise<ServiceBusBroker> {
  return ServiceBusBroker.start(options);
}
