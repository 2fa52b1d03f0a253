/**
 * Trace context for one job from the HTTP request to the runner (issue 14): spans through @opentelemetry/api and
 * the W3C `traceparent` string wherever the context crosses a process (orchestration input, Service Bus
 * application property, the runner's API calls). Without a registered provider (setupTracing) every span is a
 * no-op. Attributes go through `safeAttributes`: nothing that looks like a SAS or a secret is recorded.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { errorMessage } from './errors.js';

export { SpanKind };

/** The header and application property name (W3C Trace Context). */
export const TRACEPARENT = 'traceparent';

const propagator = new W3CTraceContextPropagator();
const tracer = () => trace.getTracer('dbdist');

export interface TracingSetup {
  /** Spans go here (Azure Monitor, OTLP, or an in-memory exporter in tests). */
  exporter?: SpanExporter;
  /** Overrides the batch processor built around `exporter` (tests use a SimpleSpanProcessor). */
  processor?: SpanProcessor;
}

/** Registers the global tracer provider and the async context; returns a flush-and-stop for shutdown. */
export function setupTracing({ exporter, processor }: TracingSetup): () => Promise<void> {
  const processors = processor ? [processor] : exporter ? [new BatchSpanProcessor(exporter)] : [];
  const provider = new BasicTracerProvider({ spanProcessors: processors });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  return () => provider.shutdown();
}

/** The context a `traceparent` continues, on top of a clean root (never whatever the caller's async chain held). */
export function contextFromTraceparent(traceparent: unknown): Context {
  if (typeof traceparent !== 'string') return ROOT_CONTEXT;
  return propagator.extract(ROOT_CONTEXT, { [TRACEPARENT]: traceparent }, { get: (carrier, key) => carrier[key], keys: Object.keys });
}

/** The active span's `traceparent`, or undefined when nothing is being traced. */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagator.inject(context.active(), carrier, { set: (target, key, value) => (target[key] = value) });
  return carrier[TRACEPARENT];
}

/** `{ traceparent }` when tracing, else `{}`: spread into headers, messages and inputs. */
export function traceparentField(): { traceparent?: string } {
  const value = currentTraceparent();
  return value ? { traceparent: value } : {};
}

// A SAS signature, a bearer token or a URL query string never becomes an attribute.
const SECRET_LOOKING = /sig=|bearer\s|[?&][a-z]+=/i;

/** Drops undefined values and anything that looks like a secret or SAS URL. */
export function safeAttributes(attributes: Record<string, string | number | boolean | undefined | null>): Attributes {
  const safe: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    if (typeof value === 'string' && SECRET_LOOKING.test(value)) continue;
    safe[key] = value;
  }
  return safe;
}

export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Record<string, string | number | boolean | undefined | null>;
  /** The parent; default the active context. */
  parent?: Context;
}

/** Runs `work` inside a new span; an error marks the span failed (message only) and is rethrown. */
export async function inSpan<T>(name: string, options: SpanOptions, work: (span: Span) => Promise<T>): Promise<T> {
  const parent = options.parent ?? context.active();
  const span = tracer().startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: safeAttributes(options.attributes ?? {}) }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => work(span));
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error).replace(/\?[^\s]*/g, '?…') });
    span.setAttribute('outcome', 'error');
    throw error;
  } finally {
    span.end();
  }
}

/** Sets attributes after the fact (the outcome, a status code), through the same filter. */
export function setSpanAttributes(span: Span, attributes: Record<string, string | number | boolean | undefined | null>): void {
  span.setAttributes(safeAttributes(attributes));
}

/** Adds attributes to the active span, if any (a service naming the job it just created). */
export function annotateActiveSpan(attributes: Record<string, string | number | boolean | undefined | null>): void {
  const span = trace.getActiveSpan();
  if (span) setSpanAttributes(span, attributes);
}
