// @ts-check
/**
 * Shared helpers for the browser tests: a real `chat serve` in embedded mode on a
 * temp data dir, and Debian's Chromium driven by playwright-core (never a downloaded
 * browser). The server binary comes from CHAT_BIN (default ../target/debug/chat).
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const webDir = path.resolve(here, "../..");
export const screenshotDir = path.join(webDir, "screenshots");
export const chatBin = path.resolve(webDir, process.env.CHAT_BIN ?? "../target/debug/chat");
export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** A running `chat serve`; `stop()` sends SIGTERM and waits for a graceful exit. */
export class ChatServer {
  /** @param {string} dataDir @param {Record<string, string>} env extra environment */
  constructor(dataDir, env = {}) {
    this.dataDir = dataDir;
    this.env = env;
    /** @type {import("node:child_process").ChildProcess | null} */
    this.proc = null;
    this.port = 0;
    this.url = "";
    /** @type {string[]} */
    this.log = [];
  }

  /** Starts the server (on `port`, or a free one) and resolves when it is listening. */
  async start(port = 0, attempts = 5) {
    for (let i = 1; ; i++) {
      try {
        return await this.startOnce(port);
      } catch (e) {
        // The old process may hold the port for a moment after exiting.
        if (i >= attempts || port === 0) throw e;
        await new Promise((r) => setTimeout(r, 300 * i));
      }
    }
  }

  /** @param {number} port */
  startOnce(port) {
    if (!existsSync(chatBin)) throw new Error(`chat binary not found at ${chatBin}: run cargo build -p chat-server or set CHAT_BIN`);
    const args = ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", this.dataDir, "--web-dir", path.join(webDir, "dist")];
    const proc = spawn(chatBin, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info", ...this.env },
    });
    this.proc = proc;
    return /** @type {Promise<string>} */ (
      new Promise((resolve, reject) => {
        let buf = "";
        const timer = setTimeout(() => fail(new Error("chat serve did not print its address within 30 s")), 30_000);
        /** @param {Error} err */
        const fail = (err) => {
          clearTimeout(timer);
          proc.kill("SIGKILL");
          reject(new Error(`${err.message}\n--- server log ---\n${this.log.slice(-40).join("\n")}`));
        };
        proc.stdout?.setEncoding("utf8").on("data", (/** @type {string} */ chunk) => {
          buf += chunk;
          let nl;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            this.record(line);
            const m = /listening on (http:\/\/[\d.]+:(\d+))/.exec(line);
            if (m) {
              clearTimeout(timer);
              this.url = m[1];
              this.port = Number(m[2]);
              resolve(this.url);
            }
          }
        });
        proc.stderr?.setEncoding("utf8").on("data", (/** @type {string} */ chunk) => {
          for (const line of chunk.split("\n")) if (line) this.record(line);
        });
        proc.once("exit", (code, signal) => fail(new Error(`chat serve exited early (code ${code}, signal ${signal})`)));
        proc.once("error", (e) => fail(e));
      })
    );
  }

  /** @param {string} line */
  record(line) {
    this.log.push(line);
    if (this.log.length > 2000) this.log.splice(0, 1000);
    if (process.env.CHAT_TEST_VERBOSE) console.error(`[chat] ${line}`);
  }

  /** SIGTERM, then wait (SIGKILL after 10 s). Resolves with the exit code. */
  async stop() {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return proc?.exitCode ?? null;
    proc.removeAllListeners("exit");
    /** @type {Promise<number | NodeJS.Signals | null>} */
    const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve(code ?? signal)));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    const result = await exited;
    clearTimeout(timer);
    return result;
  }
}

export async function makeTempDir() {
  return mkdtemp(path.join(tmpdir(), "chat-browser-"));
}

/** @param {string} dir */
export async function removeDir(dir) {
  await rm(dir, { recursive: true, force: true });
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A JSON answer from the server, as the wire type the caller declares (the server
 * speaks protocol.ts, so the tests trust it the way the client does).
 * @template T
 * @param {Response} res
 * @returns {Promise<T>}
 */
export async function jsonBody(res) {
  /** @type {unknown} */
  const body = await res.json();
  return /** @type {T} */ (body);
}
