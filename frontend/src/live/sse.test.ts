import { describe, expect, it } from "vitest";

import { ApiError } from "../api/errors";
import { readEventStream, subscribe, type SseEvent } from "./sse";

function stream(chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(typeof c === "string" ? enc.encode(c) : c);
      controller.close();
    },
  });
}

function until(predicate: () => boolean, ms = 2000): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => (predicate() ? resolve() : Date.now() - start > ms ? reject(new Error("timed out")) : setTimeout(tick, 5));
    tick();
  });
}

describe("readEventStream", () => {
  it("parses events split at any byte, including inside a UTF-8 character", async () => {
    const wire = 'id: 1\nevent: log\ndata: {"message":"épocha 1 ✓"}\n\nid: 2\nevent: progress\ndata: {"progress":0.5}\n\n: ping\n\n';
    const bytes = new TextEncoder().encode(wire);
    // Every possible split point of the whole stream into two chunks, plus byte-by-byte.
    const splits = [...Array(bytes.length).keys()].map((i) => [bytes.slice(0, i), bytes.slice(i)]);
    splits.push([...bytes].map((b) => new Uint8Array([b])));
    for (const chunks of splits) {
      const events: SseEvent[] = [];
      await readEventStream(stream(chunks), (e) => events.push(e));
      expect(events).toEqual([
        { id: "1", event: "log", data: '{"message":"épocha 1 ✓"}' },
        { id: "2", event: "progress", data: '{"progress":0.5}' },
      ]);
    }
  });

  it("handles CRLF line endings and multi-line data", async () => {
    const events: SseEvent[] = [];
    await readEventStream(stream(["id: 7\r\nevent: log\r\ndata: a\r\ndata: b\r\n\r\n"]), (e) => events.push(e));
    expect(events).toEqual([{ id: "7", event: "log", data: "a\nb" }]);
  });
});

describe("subscribe", () => {
  const noSleep = () => Promise.resolve();

  it("resumes with Last-Event-ID after a drop, missing and repeating nothing", async () => {
    const asked: (string | undefined)[] = [];
    const responses = [
      // First connection drops mid-event: event 3 is incomplete and must not be seen.
      stream(["id: 1\nevent: state\ndata: {}\n\nid: 2\nevent: progress\ndata: {}\n\nid: 3\nevent: pro"]),
      stream(["id: 3\nevent: progress\ndata: {}\n\n", 'event: end\ndata: {"state":"succeeded"}\n\n']),
    ];
    const events: SseEvent[] = [];
    let closed = false;
    subscribe({
      lastEventId: "0",
      connect: async (last) => {
        asked.push(last);
        return responses.shift()!;
      },
      onEvent: (e) => events.push(e),
      isFinal: (e) => e.event === "end",
      onStatus: (s) => {
        if (s === "closed") closed = true;
      },
      sleep: noSleep,
    });
    await until(() => closed);
    expect(asked).toEqual(["0", "2"]);
    expect(events.map((e) => e.id ?? e.event)).toEqual(["1", "2", "3", "end"]);
  });

  it("retries network and 5xx failures, stops on a 4xx", async () => {
    let calls = 0;
    const fatal: unknown[] = [];
    let closed = false;
    subscribe({
      connect: async () => {
        calls++;
        if (calls === 1) throw new TypeError("network down");
        if (calls === 2) throw new ApiError(503, "unavailable");
        throw new ApiError(404, "job j1 not found");
      },
      onEvent: () => undefined,
      onFatal: (e) => fatal.push(e),
      onStatus: (s) => {
        if (s === "closed") closed = true;
      },
      sleep: noSleep,
    });
    await until(() => closed);
    expect(calls).toBe(3);
    expect(fatal).toHaveLength(1);
    expect((fatal[0] as ApiError).message).toBe("job j1 not found");
  });

  it("stops reconnecting when unsubscribed", async () => {
    let calls = 0;
    const unsubscribe = subscribe({
      connect: async () => {
        calls++;
        return stream(["id: 1\nevent: log\ndata: {}\n\n"]);
      },
      onEvent: () => undefined,
      retryMs: 5,
    });
    await until(() => calls >= 2);
    unsubscribe();
    const seen = calls;
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBeLessThanOrEqual(seen + 1);
  });
});
