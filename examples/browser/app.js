// Render a replayed LLM stream as markdown, the way a chat UI does.
//
// Two transports: EventSource (GET; reconnects by itself after a cut, sending Last-Event-ID,
// which `streamreel serve --ids` answers by resuming after that event) and fetch() of a POST
// (the way SDK-less front ends call /v1/messages), read as a byte stream and parsed here.
// Understands Anthropic Messages events, OpenAI Chat Completions chunks and OpenAI Responses
// events. window.reel exposes what arrived, for people poking at it in devtools and for tests.
(function () {
  "use strict";

  const ANTHROPIC_EVENTS = ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop", "ping", "error"];
  const RESPONSES_EVENTS = ["response.created", "response.output_text.delta", "response.completed", "response.failed"];

  let finish;
  const reel = {
    events: [],
    text: "",
    opens: 0,
    errors: 0,
    state: "idle",
    done: new Promise(function (resolve) { finish = resolve; }),
  };
  window.reel = reel;

  const $ = function (id) { return document.getElementById(id); };
  let scheduled = false;

  function paint() {
    scheduled = false;
    $("output").innerHTML = window.renderMarkdown(reel.text);
    $("status").textContent = reel.state + " · " + reel.events.length + " events · " + reel.opens + " connection(s)";
  }

  // At most one render per frame while deltas pour in.
  function show() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(function () { if (scheduled) paint(); });
  }

  function end(state) {
    if (reel.state === "done" || reel.state === "closed" || reel.state === "failed") return;
    reel.state = state;
    document.body.dataset.state = state;
    paint();
    finish({ state: state, text: reel.text, events: reel.events.map(function (e) { return { type: e.type, id: e.id }; }), opens: reel.opens, errors: reel.errors });
  }

  // One SSE event, from either transport: record it, pull out its text, notice the end.
  function dispatch(type, data, id) {
    reel.events.push({ type: type, id: id, data: data });
    if (data === "[DONE]") return end("done");
    let payload = null;
    try { payload = JSON.parse(data); } catch (err) { /* not JSON: keep it in the log only */ }
    if (payload && typeof payload === "object") {
      const kind = payload.type;
      if (kind === "content_block_delta" && payload.delta && payload.delta.type === "text_delta") reel.text += payload.delta.text;
      if (kind === "response.output_text.delta" && typeof payload.delta === "string") reel.text += payload.delta;
      if (Array.isArray(payload.choices)) {
        for (const choice of payload.choices) {
          if (choice.delta && typeof choice.delta.content === "string") reel.text += choice.delta.content;
        }
      }
      if (kind === "message_stop" || kind === "response.completed") return end("done");
      if (type === "error" || kind === "error" || kind === "response.failed") return end("failed");
    }
    if (reel.state !== "streaming") reel.state = "streaming";
    show();
  }

  function viaEventSource(src) {
    const source = new EventSource(src);
    reel.source = source;
    const on = function (e) {
      if (reel.state === "done") return;
      dispatch(e.type, e.data, e.lastEventId || null);
      if (reel.state === "done" || reel.state === "failed") source.close();
    };
    source.onmessage = on;
    for (const name of ANTHROPIC_EVENTS.concat(RESPONSES_EVENTS)) {
      if (name !== "error") source.addEventListener(name, on);
    }
    source.addEventListener("error", function (e) {
      if (e instanceof MessageEvent && e.data !== undefined) return on(e); // an SSE `event: error`
      reel.errors += 1;
      if (source.readyState === EventSource.CLOSED) return end("closed"); // e.g. 204: nothing left
      reel.state = "reconnecting";
      show();
    });
    source.onopen = function () { reel.opens += 1; reel.state = "streaming"; show(); };
  }

  // The event-stream parsing rules, enough for LLM streams: fields, comments, any line ending.
  async function viaFetch(src, body) {
    const response = await fetch(src, { method: "POST", headers: { "content-type": "application/json", accept: "text/event-stream" }, body: body });
    reel.opens += 1;
    if (!response.ok || !response.body) return end("failed");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "", type = "message", data = [], id = null;
    try {
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer += chunk.value;
        const lines = buffer.split(/\r\n|\r|\n/);
        buffer = lines.pop();
        for (const line of lines) {
          if (line === "") {
            if (data.length) dispatch(type, data.join("\n"), id);
            type = "message"; data = [];
            continue;
          }
          if (line[0] === ":") continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value[0] === " ") value = value.slice(1);
          if (field === "event") type = value;
          else if (field === "data") data.push(value);
          else if (field === "id") id = value;
        }
      }
    } catch (err) {
      reel.errors += 1;
      return end("failed");
    }
    end(reel.state === "streaming" ? "closed" : reel.state);
  }

  function start() {
    const src = $("src").value;
    const mode = $("mode").value;
    reel.state = "connecting";
    show();
    if (mode === "fetch") viaFetch(src, $("body").value);
    else viaEventSource(src);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const params = new URLSearchParams(location.search);
    if (params.get("src")) $("src").value = params.get("src");
    if (params.get("mode")) $("mode").value = params.get("mode");
    if (params.get("body")) $("body").value = params.get("body");
    $("start").addEventListener("click", start);
    if (params.get("src")) start();
  });
})();
