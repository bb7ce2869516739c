// @ts-check
/**
 * Conversation events end to end in Debian's Chromium against a real `chat serve`
 * (issue 10): two users react, edit, reply and delete in a direct chat and each sees
 * the other's change live; a mention in a group raises a badge in the list of the
 * member looking elsewhere; search finds a message older than the loaded page and
 * opens the conversation around it; the message actions work by tap at phone width.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { ChatServer, jsonBody, launchBrowser, makeTempDir, removeDir, screenshotDir } from "./harness.mjs";
import { PASSWORD, logIn, openConversation, seeMessage, send, signUp } from "./ui.mjs";

/** @typedef {import("playwright-core").Page} Page */
/** @typedef {import("playwright-core").Browser} Browser */
/** @typedef {import("playwright-core").BrowserContext} BrowserContext */
/** @typedef {import("../../src/protocol").AuthResponse} AuthResponse */
/** @typedef {import("../../src/protocol").Conversation} Conversation */

const T = 15_000; // per wait

/** @type {ChatServer} */
let server;
/** @type {Browser} */
let browser;
let dataDir = "";
/** @type {Record<string, Page>} */
const pages = {};
/** @type {BrowserContext[]} */
const contexts = [];
let failed = false;

/** @param {string} name @param {{width: number, height: number}} [viewport] */
async function newUserPage(name, viewport = { width: 1100, height: 720 }) {
  const phone = viewport.width < 500;
  const context = await browser.newContext({ viewport, colorScheme: "light", isMobile: phone, hasTouch: phone });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  page.on("pageerror", (e) => console.error(`[${name} page error] ${e.message}`));
  pages[name] = page;
  return page;
}

/** @param {Page} page @param {string} name */
async function shot(page, name) {
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`) });
}

/** The stored message whose body contains `text`. @param {Page} page @param {string} text */
function messageWith(page, text) {
  return page.locator(".message[data-message-id]", { hasText: text }).first();
}

/** Hovers a message and clicks one of its actions. @param {Page} page @param {string} text @param {string} action */
async function act(page, text, action) {
  const m = messageWith(page, text);
  await m.hover();
  await m.getByRole("button", { name: action, exact: true }).click();
}

describe("conversation events in a real browser", { timeout: 240_000 }, () => {
  before(async () => {
    await mkdir(screenshotDir, { recursive: true });
    dataDir = await makeTempDir();
    server = new ChatServer(dataDir);
    await server.start();
    browser = await launchBrowser();
  });

  after(async () => {
    if (failed) console.error(`--- last server log lines ---\n${server?.log.slice(-60).join("\n")}`);
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close().catch(() => {});
    await server?.stop();
    await removeDir(dataDir);
  });

  /** Wraps a step so a failure prints the server log and a screenshot of each page. */
  /** @param {string} name @param {() => Promise<void>} fn */
  const step = (name, fn) => {
    it(name, { timeout: 90_000 }, async () => {
      try {
        await fn();
      } catch (e) {
        failed = true;
        for (const [who, page] of Object.entries(pages)) {
          await page.screenshot({ path: path.join(dataDir, `..`, `events-failure-${who}.png`) }).catch(() => {});
        }
        throw e;
      }
    });
  };

  step("alice and bob start a direct chat", async () => {
    const alice = await newUserPage("alice");
    const bob = await newUserPage("bob");
    await Promise.all([
      signUp(alice, server.url, "alice", { displayName: "Alice Liddell" }),
      signUp(bob, server.url, "bob", { displayName: "Bob Builder" }),
    ]);
    await alice.getByLabel("Search people").fill("bo");
    await alice.getByRole("button", { name: "Chat with Bob Builder" }).click();
    await alice.locator(".conversation-header h2", { hasText: "Bob Builder" }).waitFor();
    await send(alice, "Lunch at noon?");
    await seeMessage(alice, "Lunch at noon?");
    await openConversation(bob, "Alice Liddell");
    await seeMessage(bob, "Lunch at noon?");
  });

  step("a reaction shows as a chip for both, highlighted for the one who reacted, and toggles off", async () => {
    const { alice, bob } = pages;
    await act(bob, "Lunch at noon?", "React with 👍");
    const bobChip = messageWith(bob, "Lunch at noon?").locator(".reaction", { hasText: "1" });
    await bobChip.waitFor();
    assert.equal(await bobChip.getAttribute("aria-pressed"), "true");
    const aliceChip = messageWith(alice, "Lunch at noon?").locator(".reaction", { hasText: "1" });
    await aliceChip.waitFor();
    assert.equal(await aliceChip.getAttribute("aria-pressed"), "false");
    // Alice adds hers: 2 for both.
    await aliceChip.click();
    await messageWith(bob, "Lunch at noon?").locator(".reaction", { hasText: "2" }).waitFor();
    // Bob takes his back.
    await messageWith(bob, "Lunch at noon?").locator(".reaction").click();
    await messageWith(alice, "Lunch at noon?").locator('.reaction[aria-pressed="true"]', { hasText: "1" }).waitFor();
  });

  step("alice edits her message inline; bob sees the new text marked edited", async () => {
    const { alice, bob } = pages;
    await act(alice, "Lunch at noon?", "Edit");
    const editor = alice.getByLabel("Edit message");
    await editor.fill("Lunch at one?");
    await editor.press("Enter");
    await messageWith(alice, "Lunch at one?").locator(".edited").waitFor();
    await messageWith(bob, "Lunch at one?").locator(".edited").waitFor();
    assert.equal(await bob.locator(".message .body", { hasText: "Lunch at noon?" }).count(), 0);
  });

  step("bob replies; the quote jumps to the original", async () => {
    const { alice, bob } = pages;
    await act(bob, "Lunch at one?", "Reply");
    await bob.locator(".replying-to", { hasText: "Lunch at one?" }).waitFor();
    await send(bob, "One works");
    await bob.locator(".replying-to").waitFor({ state: "detached" });
    const quote = messageWith(alice, "One works").locator(".reply-quote");
    await quote.filter({ hasText: "Lunch at one?" }).waitFor();
    await quote.click();
    await alice.locator('.message[data-highlighted="true"]', { hasText: "Lunch at one?" }).waitFor();
    await shot(alice, "08-reactions-edit-reply");
  });

  step("alice deletes her message; both see it deleted, and the reply's quote says so", async () => {
    const { alice, bob } = pages;
    await act(alice, "Lunch at one?", "Delete");
    await alice.getByRole("alertdialog").getByRole("button", { name: "Delete" }).click();
    await alice.locator(".message .body.deleted", { hasText: "message deleted" }).waitFor();
    await bob.locator(".message .body.deleted", { hasText: "message deleted" }).waitFor();
    await messageWith(bob, "One works").locator(".reply-quote", { hasText: "original deleted" }).waitFor();
    assert.equal(await bob.locator(".message", { hasText: "Lunch at one?" }).count(), 0);
  });

  step("a mention in a group raises a badge in the list of a member looking elsewhere", async () => {
    const { alice, bob } = pages;
    const carol = await newUserPage("carol");
    await signUp(carol, server.url, "carol", { displayName: "Carol Danvers" });
    await alice.getByRole("button", { name: "New group" }).click();
    const dialog = alice.getByRole("dialog", { name: "New group" });
    await dialog.getByLabel("Group name").fill("Trip");
    for (const [name, label] of [["bob", "Bob Builder"], ["carol", "Carol Danvers"]]) {
      await dialog.getByPlaceholder("Search by username").fill(name);
      await dialog.getByLabel(`Add ${label}`).check();
    }
    await dialog.getByRole("button", { name: "Create group" }).click();
    await alice.locator(".conversation-header h2", { hasText: "Trip" }).waitFor();

    // @ autocomplete: type "@bo", pick with Enter.
    const box = alice.locator(".composer textarea");
    await box.pressSequentially("@bo", { delay: 20 });
    await alice.getByRole("option", { name: /Bob Builder/ }).waitFor();
    await box.press("Enter");
    assert.equal(await box.inputValue(), "@bob ");
    await box.pressSequentially("bring snacks", { delay: 5 });
    await box.press("Enter");
    await seeMessage(alice, "bring snacks");

    // Bob is still in the direct chat: the group's row shows the mention.
    const row = bob.locator(".conversation-list .row", { hasText: "Trip" });
    await row.getByTestId("mention-badge").filter({ hasText: "@1" }).waitFor();
    await shot(bob, "09-mention-badge");
    await openConversation(bob, "Trip");
    await bob.locator('.message[data-mentions-me="true"] .mention[data-me="true"]', { hasText: "@bob" }).waitFor();
    await row.getByTestId("mention-badge").waitFor({ state: "detached" });
  });

  step("search finds a message older than the loaded page and opens the conversation around it", async () => {
    // 70 newer messages through the HTTP send path, so the target is not in the newest page.
    const api = `${server.url}/api/v1`;
    const login = await fetch(`${api}/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "alice", password: PASSWORD }),
    });
    assert.equal(login.status, 200);
    /** @type {AuthResponse} */
    const { access_token } = await jsonBody(login);
    const auth = { authorization: `Bearer ${access_token}`, "content-type": "application/json" };
    /** @type {Conversation[]} */
    const list = await jsonBody(await fetch(`${api}/conversations`, { headers: auth }));
    const trip = list.find((c) => c.title === "Trip");
    if (!trip) throw new Error("the group is not in alice's list");
    const tripMessages = `${api}/conversations/${trip.id}/messages`;
    for (let i = 1; i <= 70; i++) {
      const res = await fetch(tripMessages, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ client_msg_id: crypto.randomUUID(), body: `Filler ${i}.` }),
      });
      if (res.status === 429) {
        await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get("retry-after") ?? 1)));
        i--;
        continue;
      }
      assert.equal(res.status, 201, await res.text());
    }

    const page = await newUserPage("bob-again");
    await logIn(page, server.url, "bob");
    await page.getByRole("button", { name: "Find messages" }).click();
    await page.getByLabel("Search messages").fill("snacks");
    await page.getByLabel("Search messages").press("Enter");
    const hit = page.locator(".search-hit", { hasText: "snacks" });
    await hit.locator("mark").first().waitFor();
    await shot(page, "10-search");
    await hit.click();
    await page.locator(".conversation-header h2", { hasText: "Trip" }).waitFor();
    await page.locator('.message[data-highlighted="true"]', { hasText: "bring snacks" }).waitFor();
    // The window around it, not the newest page: the latest is one button away (or
    // a scroll down, which loads the newer pages; either may finish first).
    const jump = page.getByRole("button", { name: "Jump to the latest messages" });
    await jump.waitFor();
    assert.equal(await page.locator(".message", { hasText: "Filler 70." }).count(), 0, "opened at the newest page");
    const latest = page.locator(".message .body", { hasText: "Filler 70." });
    for (let i = 0; i < 40 && !(await latest.isVisible()); i++) {
      if (await jump.isVisible()) await jump.click({ timeout: 2_000 }).catch(() => {});
      await page.waitForTimeout(150);
    }
    await seeMessage(page, "Filler 70.");
  });

  step("at phone width the actions open by tap, without horizontal overflow", async () => {
    const page = await newUserPage("bob-phone", { width: 390, height: 780 });
    await logIn(page, server.url, "bob");
    await openConversation(page, "Alice Liddell");
    const m = messageWith(page, "One works");
    await m.getByRole("button", { name: "More actions" }).tap();
    await m.getByRole("button", { name: "Add reaction" }).tap();
    await page.getByRole("dialog", { name: "Pick a reaction" }).getByRole("button", { name: "React with 🎉" }).tap();
    await m.locator(".reaction", { hasText: "1" }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.equal(overflow, 0, "the page scrolls sideways");
    await shot(page, "11-phone-actions");
  });
});
