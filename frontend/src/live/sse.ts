/**
 * Server-Sent Events over fetch, so the request can carry the Authorization header
 * (the browser's EventSource cannot). eventsource-parser does the wire format; this
 * module adds reconnection that resumes with `Last-Event-ID`, so a dropped connection
 * neither misses nor repeats an event.
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";

import { ApiError } from "../api/errors";

export type SseEvent = { id?: string; event: string; data: string };

/** Feed a byte stream to the parser; resolves when the server closes the stream. */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: SseEvent) => void,
  onRetry?: (ms: number) => void,
): Promise<void> {
  const parser = createParser({
    onEvent: (m: EventSourceMessage) => onEvent({ id: m.id, event: m.event ?? "message", data: m.data }),
    onRetry,
  });
  const reader = body.getReader();
  // stream: true keeps a multi-byte character split across chunks intact.
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
    }
    const tail = decoder.decode();
    if (tail) parser.feed(tail);
  } finally {
    reader.releaseLock();
  }
}

export type Connect = (lastEventId: string | undefined, signal: AbortSignal) => Promise<ReadableStream<Uint8Array>>;

export type SubscribeOptions = {
  connect: Connect;
  onEvent: (event: SseEvent) => void;
  /** An event after which the stream is complete (no reconnect). */
  isFinal?: (event: SseEvent) => boolean;
  onStatus?: (status: "connecting" | "open" | "reconnecting" | "closed", error?: unknown) => void;
  onFatal?: (error: unknown) => void;
  lastEventId?: string;
  retryMs?: number;
  maxRetryMs?: number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
};

function retriable(error: unknown): boolean {
  if (error instanceof ApiError) return error.status === 0 || error.status === 429 || error.status >= 500;
  return true; // network failures and dropped streams
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/**
 * Keep a stream open until a final event arrives or the caller unsubscribes; after a
 * drop, reconnect with the last event id seen. Returns the unsubscribe function.
 */
export function subscribe(options: SubscribeOptions): () => void {
  const controller = new AbortController();
  const { signal } = controller;
  const sleep = options.sleep ?? defaultSleep;
  const base = options.retryMs ?? 1000;
  const max = options.maxRetryMs ?? 15_000;
  let lastEventId = options.lastEventId;
  let serverRetry: number | null = null;

  const run = async () => {
    let delay = base;
    let attempt = 0;
    while (!signal.aborted) {
      options.onStatus?.(attempt === 0 ? "connecting" : "reconnecting");
      let finished = false;
      let sawEvent = false;
      try {
        const body = await options.connect(lastEventId, signal);
        options.onStatus?.("open");
        await readEventStream(
          body,
          (event) => {
            if (signal.aborted) return;
            sawEvent = true;
            if (event.id !== undefined && event.id !== "") lastEventId = event.id;
            options.onEvent(event);
            if (options.isFinal?.(event)) finished = true;
          },
          (ms) => {
            serverRetry = ms;
          },
        );
      } catch (error) {
        if (signal.aborted) break;
        if (!retriable(error)) {
          options.onStatus?.("closed", error);
          options.onFatal?.(error);
          return;
        }
        options.onStatus?.("reconnecting", error);
      }
      if (finished || signal.aborted) break;
      if (sawEvent) delay = base; // the connection was healthy: start the backoff over
      attempt++;
      await sleep(serverRetry ?? delay, signal);
      delay = Math.min(delay * 2, max);
    }
    options.onStatus?.("closed");
  };
  void run();
  return () => controller.abort();
}
