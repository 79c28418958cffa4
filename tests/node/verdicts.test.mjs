// Resilience verdicts on Node clients: the official SDKs and raw fetch, judged from the server's ground truth.
import assert from "node:assert/strict";
import { test } from "node:test";

import Anthropic from "@anthropic-ai/sdk";

import { CASSETTES, KEY, REQUEST, admin, load, serveForThisFile } from "./server.mjs";

const server = serveForThisFile(CASSETTES, "--speed", "0");

const sdk = (options = {}) => new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0, ...options });
const verdicts = async (query = "") => (await admin(server.url, "GET", `verdicts${query}`)).body;

test("ignored_retry_after: the SDK honours retry-after; a bare fetch loop does not", async () => {
  await load(server.url, "anthropic", ["http:status=429,times=2,retry_after=200ms"]);
  await sdk({ maxRetries: 2 }).messages.stream(REQUEST).finalMessage();
  let v = await verdicts();
  assert.equal(v.ok, true, JSON.stringify(v.failed));
  assert.equal(v.requests, 3);

  await load(server.url, "anthropic", ["http:status=429,times=2,retry_after=200ms"]);
  for (let attempt = 0; attempt < 3; attempt++) {
    const resp = await fetch(`${server.url}/v1/messages`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(REQUEST) });
    await resp.arrayBuffer();
    if (resp.ok) break;
  }
  v = await verdicts();
  assert.ok(v.failed.includes("ignored_retry_after"), JSON.stringify(v.failed));
});

test("waited_on_silence: `timeout` does not cover a stall in the body; an idle timer does", { timeout: 15_000 }, async () => {
  await load(server.url, "anthropic", ["stall:after=4"]);
  const guard = new AbortController();
  const stream = await sdk({ timeout: 1000 }).messages.create({ ...REQUEST, stream: true }, { signal: guard.signal });
  const events = stream[Symbol.asyncIterator]();
  for (let i = 0; i < 3; i++) await events.next();
  const waiting = events.next(); // blocks in the silence; `timeout: 1000` will not end it
  const v = await verdicts("?silence_s=2&grace_s=2.5");
  assert.ok(v.failed.includes("waited_on_silence"), JSON.stringify(v.failed));
  const evidence = v.verdicts.find((x) => x.check === "waited_on_silence").evidence[0];
  assert.match(evidence.detail, /still open after \d+ ms of silence/);
  guard.abort(); // the test bounds itself
  assert.deepEqual(await waiting, { value: undefined, done: true }, "an abort ends create()'s loop with no error");

  await load(server.url, "anthropic", ["stall:after=4"]);
  const idle = await sdk().messages.create({ ...REQUEST, stream: true });
  let timer = setTimeout(() => idle.controller.abort(), 1000);
  let seen = 0;
  for await (const _ of idle) {
    seen++;
    clearTimeout(timer);
    timer = setTimeout(() => idle.controller.abort(), 1000);
  }
  clearTimeout(timer);
  assert.equal(seen, 3);
  const fine = await verdicts("?silence_s=2");
  assert.equal(fine.ok, true, JSON.stringify(fine.failed));
});

test("dangling_stream: breaking out of the SDK's loop closes the stream; a fetch reader left unread does not", async () => {
  await load(server.url, "anthropic", ["stall:after=4"]);
  const stream = await sdk().messages.create({ ...REQUEST, stream: true });
  for await (const ev of stream) if (ev.type === "content_block_delta") break;
  await sdk().models.list().catch(() => undefined); // the app moves on
  let v = await verdicts();
  assert.equal(v.ok, true, JSON.stringify(v.failed));

  await load(server.url, "anthropic", ["stall:after=4"]);
  const resp = await fetch(`${server.url}/v1/messages`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(REQUEST) });
  const reader = resp.body.getReader();
  await reader.read(); // reads a little, then forgets the reader without cancel()
  await fetch(`${server.url}/v1/models`).then((r) => r.arrayBuffer());
  v = await verdicts("?grace_s=0.2");
  assert.ok(v.failed.includes("dangling_stream"), JSON.stringify(v.failed));
  await reader.cancel();
});

test("too_many_streams: Promise.all over four streams against a limit of two; a tiny pool keeps to it", async () => {
  const run = async (limit) => {
    await load(server.url, "anthropic", ["stall:after=2,seconds=0.3"]);
    const client = sdk();
    const queue = Array.from({ length: 4 }, () => () => client.messages.stream(REQUEST).finalMessage());
    const worker = async () => {
      while (queue.length) await queue.shift()();
    };
    await Promise.all(Array.from({ length: limit }, worker));
    return verdicts("?max_streams=2");
  };
  const flooded = await run(4);
  assert.deepEqual(flooded.failed, ["too_many_streams"]);
  assert.match(flooded.verdicts.find((x) => x.check === "too_many_streams").evidence[0].detail, /at most 4\); the limit is 2/);
  const pooled = await run(2);
  assert.equal(pooled.ok, true, JSON.stringify(pooled.failed));
});
