// Start `streamreel serve` for a Node test and talk to its admin API, as a user's Node suite would.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";

export const HERE = dirname(fileURLToPath(import.meta.url));
export const CASSETTES = join(HERE, "cassettes");
const VENV_PYTHON = join(HERE, "..", "..", ".venv", "bin", "python");

/** The Python that runs streamreel: $STREAMREEL_PYTHON (the pytest driver sets it), the repo's venv, or python3. */
export function python() {
  return process.env.STREAMREEL_PYTHON || (existsSync(VENV_PYTHON) ? VENV_PYTHON : "python3");
}

/** `streamreel serve ARGS -q` on 127.0.0.1; resolves to { url, stop } once it prints its URL (20 s at most). */
export function serve(...args) {
  const proc = spawn(python(), ["-m", "streamreel", "serve", ...args, "-q"], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`streamreel serve printed no URL within 20 s; stderr: ${stderr}`));
    }, 20_000);
    let out = "";
    proc.stdout.on("data", (chunk) => {
      out += chunk;
      const match = /^listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(out);
      if (match) {
        clearTimeout(timer);
        const stop = () =>
          new Promise((done) => {
            if (proc.exitCode !== null) return done(proc.exitCode);
            proc.once("exit", (code) => done(code));
            proc.kill("SIGTERM");
          });
        resolve({ url: match[1], stop });
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`streamreel serve exited with ${code}; stderr: ${stderr}`));
    });
  });
}

/** One server for the test file that calls this: started before its tests, stopped (exit 0) after them. */
export function serveForThisFile(...args) {
  const handle = { url: undefined };
  let server;
  before(async () => {
    server = await serve(...args);
    handle.url = server.url;
  });
  after(async () => {
    assert.equal(await server.stop(), 0);
  });
  return handle;
}

/** One admin call: resolves to { status, body } with the JSON body parsed. */
export async function admin(url, method, route, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["content-type"] ??= "application/json";
  }
  const resp = await fetch(`${url}/__streamreel/${route}`, { ...init, signal: AbortSignal.timeout(30_000) });
  return { status: resp.status, headers: resp.headers, body: await resp.json() };
}

/** Load a cassette of the served directory with faults; throws unless the server took it. */
export async function load(url, cassette, faults = [], extra = {}) {
  const { status, body } = await admin(url, "POST", "load", { cassette, faults, speed: 0, ...extra });
  if (status !== 200) throw new Error(`load ${cassette} ${faults}: ${status} ${JSON.stringify(body)}`);
  return body;
}

export const REQUEST = { model: "claude-test", max_tokens: 64, messages: [{ role: "user", content: "hi" }] };
export const OPENAI_REQUEST = { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] };
export const KEY = ["sk", "ant", "api03", "NodeAdminTestKey0123456789"].join("-");
