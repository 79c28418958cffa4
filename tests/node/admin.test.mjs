// Every admin route, from Node, with the official SDKs against `streamreel serve`.
import assert from "node:assert/strict";
import { test } from "node:test";

import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

import { CASSETTES, KEY, OPENAI_REQUEST, REQUEST, admin, load, serveForThisFile } from "./server.mjs";

const server = serveForThisFile(CASSETTES, "--speed", "0");

const sdk = (options = {}) => new Anthropic({ baseURL: server.url, apiKey: KEY, maxRetries: 0, ...options });

async function text(client) {
  const stream = client.messages.stream(REQUEST);
  return (await stream.finalMessage()).content.map((b) => b.text).join("");
}

test("requests lists what the Node SDK sent, its key scrubbed", async () => {
  await load(server.url, "anthropic");
  assert.equal(await text(sdk()), "Hello there!");
  const { status, body } = await admin(server.url, "GET", "requests");
  assert.equal(status, 200);
  assert.equal(body.length, 1);
  const [got] = body;
  assert.equal(got.method, "POST");
  assert.equal(got.path, "/v1/messages");
  assert.deepEqual(got.body, { ...REQUEST, stream: true });
  assert.equal(got.headers["x-api-key"] ?? got.headers.authorization, "<scrubbed>", JSON.stringify(got.headers));
  assert.match(got.headers["user-agent"], /^Anthropic\/JS /);
  assert.ok(!JSON.stringify(body).includes(KEY));
});

test("responses gives the ground truth: events, bytes, ending, faults, cassette", async () => {
  await load(server.url, "anthropic", ["disconnect:after=4,how=close"]);
  await assert.rejects(text(sdk()), /terminated/);
  const { body } = await admin(server.url, "GET", "responses");
  assert.equal(body.length, 1);
  const [sent] = body;
  assert.equal(sent.status, 200);
  assert.equal(sent.events, 4);
  assert.equal(sent.ending, "close");
  assert.equal(sent.cassette, "anthropic.yaml");
  assert.deepEqual(sent.faults.map((f) => [f.spec, f.fired]), [["disconnect:after=4,how=close", true]]);
  assert.ok(sent.bytes > 0 && sent.end_ms >= sent.start_ms);
});

test("responses waits for a stream in flight, or times out with a 504 that says which", async () => {
  await load(server.url, "anthropic", ["stall:after=4"]);
  const client = sdk();
  const controller = new AbortController();
  const stream = await client.messages.create({ ...REQUEST, stream: true }, { signal: controller.signal });
  const events = stream[Symbol.asyncIterator]();
  for (let i = 0; i < 3; i++) await events.next(); // message_start, content_block_start, the first delta (pings are not yielded)
  const waited = await admin(server.url, "GET", "responses?timeout=0.2");
  assert.equal(waited.status, 504);
  assert.match(waited.body.error.message, /responses to requests \[0\] still in flight after 0\.2s/);
  const now = await admin(server.url, "GET", "responses?timeout=0");
  assert.equal(now.body[0].end_ms, null);
  assert.equal(now.body[0].ending, "hang");
  controller.abort();
  const settled = await admin(server.url, "GET", "responses?timeout=10");
  assert.equal(settled.status, 200);
  assert.equal(settled.body[0].client_hung_up, true);
});

test("reset forgets requests and restarts fault counts", async () => {
  await load(server.url, "anthropic", ["http:status=529"]);
  await assert.rejects(text(sdk()), (e) => e.status === 529);
  assert.equal(await text(sdk()), "Hello there!");
  const reset = await admin(server.url, "POST", "reset");
  assert.deepEqual(reset.body, { reset: true });
  assert.deepEqual((await admin(server.url, "GET", "requests")).body, []);
  await assert.rejects(text(sdk()), (e) => e.status === 529);
});

test("load switches cassettes and faults; the openai SDK sees the new one", async () => {
  const loaded = await load(server.url, "openai", ["http:status=529"]);
  assert.equal(loaded.loaded, "openai.yaml");
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "test", maxRetries: 0 });
  await assert.rejects(client.chat.completions.create({ ...OPENAI_REQUEST, stream: true }), (e) => e.status === 529);
  await load(server.url, "openai");
  let got = "";
  for await (const chunk of await client.chat.completions.create({ ...OPENAI_REQUEST, stream: true })) got += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(got, "Foo!");
});

test("load refuses bad bodies, unknown and escaping names with a JSON message", async () => {
  const cases = [
    [{ cassette: "nope" }, 404, /no cassette 'nope' in the served directory; it holds: anthropic\.yaml, openai\.yaml, overloaded-then-ok\.yaml/],
    [{ cassette: "../package.json" }, 400, /leads outside the directory/],
    [{ cassette: 7 }, 400, /cassette must be a name \(a string\), got a JSON number/],
    [{ faults: ["nosuchfault"] }, 400, /unknown fault 'nosuchfault'; known faults:/],
    [{ speed: -1 }, 400, /speed must be a number >= 0/],
    [{ cassete: "anthropic" }, 400, /unknown key\(s\) 'cassete'/],
    ["{oops", 400, /the body is not valid JSON/],
  ];
  for (const [body, status, message] of cases) {
    const got = await admin(server.url, "POST", "load", body);
    assert.equal(got.status, status, JSON.stringify(body));
    assert.equal(got.body.type, "error");
    assert.match(got.body.error.message, message);
  }
  const form = await admin(server.url, "POST", "load", "cassette=anthropic", { "content-type": "application/x-www-form-urlencoded" });
  assert.equal(form.status, 415);
});

test("unknown routes list the routes; wrong methods are 405s; no CORS on the admin API", async () => {
  const unknown = await admin(server.url, "GET", "stats");
  assert.equal(unknown.status, 404);
  assert.match(unknown.body.error.message, /GET \/__streamreel\/verdicts/);
  const wrong = await admin(server.url, "DELETE", "requests");
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "GET");
  assert.equal(wrong.headers.get("access-control-allow-origin"), null);
});

test("verdicts: the Node SDK gives up after an overloaded error event; a retry loop does not", async () => {
  await load(server.url, "overloaded-then-ok");
  await assert.rejects(text(sdk()), (e) => e.constructor.name === "APIError" && e.status === undefined);
  let v = (await admin(server.url, "GET", "verdicts")).body;
  assert.deepEqual(v.failed, ["gave_up"]);
  assert.deepEqual(v.verdicts[0].evidence[0].requests, [0]);

  await admin(server.url, "POST", "reset");
  const withRetry = async (client) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await text(client);
      } catch (e) {
        if (attempt === 2 || !/overloaded_error|api_error/.test(e.message)) throw e;
      }
    }
  };
  assert.equal(await withRetry(sdk()), "Hello there!");
  v = (await admin(server.url, "GET", "verdicts")).body;
  assert.equal(v.ok, true, JSON.stringify(v.failed));
  assert.equal(v.requests, 2);
  assert.equal((await admin(server.url, "GET", "verdicts?silence_s=0")).status, 400);
});
