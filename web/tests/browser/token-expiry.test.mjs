// @ts-check
/**
 * Access tokens that expire quickly (CHAT_ACCESS_TOKEN_TTL_SECS=12): the client must
 * renew its token from the refresh cookie before expiry, and when the server closes the
 * WebSocket with 4401 at the old token's expiry, reconnect with the new one — without
 * the user noticing, losing a message, or being logged out.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { ChatServer, launchBrowser, makeTempDir, removeDir } from "./harness.mjs";
import { PASSWORD, seeMessage, send, signUp, waitForConnection } from "./ui.mjs";

const TTL_SECS = 12;

describe("short-lived access tokens", { timeout: 90_000 }, () => {
  /** @type {ChatServer} */
  let server;
  /** @type {import("playwright-core").Browser} */
  let browser;
  let dataDir = "";

  before(async () => {
    dataDir = await makeTempDir();
    server = new ChatServer(dataDir, { CHAT_ACCESS_TOKEN_TTL_SECS: String(TTL_SECS) });
    await server.start();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
    await removeDir(dataDir);
  });

  it("renews the token and re-authenticates the WebSocket without a logout", { timeout: 60_000 }, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    /** @type {string[]} */
    const refreshes = [];
    /** @type {number[]} */
    const wsCloses = [];
    page.on("request", (r) => r.url().endsWith("/api/v1/auth/refresh") && refreshes.push(r.url()));
    page.on("websocket", (ws) => ws.on("close", () => wsCloses.push(Date.now())));

    await signUp(page, server.url, "dora");

    // Two token lifetimes: at least one proactive refresh and one 4401 reconnect.
    await page.waitForTimeout(TTL_SECS * 2 * 1000 + 1000);
    assert.ok(refreshes.length >= 2, `expected proactive refreshes, saw ${refreshes.length}`);
    assert.ok(wsCloses.length >= 1, "expected the server to close the expired WebSocket");
    await waitForConnection(page, "online");
    await page.getByLabel("Search people").waitFor(); // still logged in

    // And the re-authenticated connection works: a message is acknowledged.
    const signup = await fetch(`${server.url}/api/v1/auth/signup`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "eve", password: PASSWORD }),
    });
    assert.equal(signup.status, 201);
    await page.getByLabel("Search people").fill("eve");
    await page.getByRole("button", { name: "Chat with eve" }).click();
    await send(page, "still connected");
    await seeMessage(page, "still connected");

    await page.reload();
    await page.getByLabel("Search people").waitFor(); // the rotated cookie still works
    await page.locator(".message .body", { hasText: "still connected" }).waitFor();
    await context.close();
  });

  it("two tabs of one user reloading at once both stay logged in", { timeout: 30_000 }, async () => {
    // Both tabs share the refresh cookie; rotation with reuse detection would revoke
    // the session if they refreshed with the same cookie at once (Web Locks prevent it).
    const context = await browser.newContext();
    const [one, two] = [await context.newPage(), await context.newPage()];
    await signUp(one, server.url, "tabby");
    await two.goto(server.url);
    await two.getByLabel("Search people").waitFor();
    // Hold every refresh for a moment so the two tabs' refreshes overlap.
    await context.route("**/api/v1/auth/refresh", async (route) => {
      await new Promise((r) => setTimeout(r, 300));
      await route.continue();
    });
    for (let i = 0; i < 3; i++) {
      await Promise.all([one.reload(), two.reload()]);
      await Promise.all([one.getByLabel("Search people").waitFor(), two.getByLabel("Search people").waitFor()]);
    }
    await context.close();
  });
});
