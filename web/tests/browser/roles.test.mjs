// @ts-check
/**
 * Group roles in Debian's Chromium against a real `chat serve`: the creator renames
 * the group and makes a member admin from the settings panel, the other member sees
 * the badge and the new name live and is offered no admin controls, and the last
 * admin leaving is told who takes over. The panel is also checked at phone width in
 * the dark theme (it fits without sideways scrolling); screenshots go to
 * web/screenshots/.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { ChatServer, launchBrowser, makeTempDir, removeDir, screenshotDir } from "./harness.mjs";
import { createGroup, openConversation, signUp } from "./ui.mjs";

/** @typedef {import("playwright-core").Page} Page */
/** @typedef {import("playwright-core").Browser} Browser */

const T = 15_000;

/** @type {ChatServer} */
let server;
/** @type {Browser} */
let browser;
let dataDir = "";

/** @param {{ width: number, height: number }} viewport @param {"light" | "dark"} colorScheme */
async function newPage(viewport, colorScheme = "light") {
  const context = await browser.newContext({ viewport, colorScheme, isMobile: viewport.width < 500, hasTouch: viewport.width < 500 });
  const page = await context.newPage();
  page.setDefaultTimeout(T);
  page.on("pageerror", (e) => console.error(`[page error] ${e.message}`));
  return page;
}

/** @param {Page} page */
function settings(page) {
  return page.getByRole("dialog", { name: "Group settings" });
}

describe("group roles in a real browser", { timeout: 120_000 }, () => {
  before(async () => {
    await mkdir(screenshotDir, { recursive: true });
    dataDir = await makeTempDir();
    server = new ChatServer(dataDir);
    await server.start();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await removeDir(dataDir);
  });

  it("an admin renames and makes an admin; the member sees it live; leaving names the successor", async () => {
    const alice = await newPage({ width: 1100, height: 720 });
    const bob = await newPage({ width: 390, height: 780 }, "dark");
    await signUp(alice, server.url, "alice", { displayName: "Alice Admin" });
    await signUp(bob, server.url, "bob", { displayName: "Bob Builder" });

    await createGroup(alice, "Weekend plans", [{ username: "bob", displayName: "Bob Builder" }]);

    // Bob, a plain member on a phone: settings show the members, no admin controls.
    await openConversation(bob, "Weekend plans");
    assert.equal(await bob.getByRole("button", { name: "Add people" }).count(), 0);
    assert.equal(await alice.getByRole("button", { name: "Add people" }).count(), 1, "an admin's header offers it");
    await bob.getByRole("button", { name: "Group settings" }).click();
    await settings(bob).getByText("Only admins can rename").waitFor();
    assert.equal(await settings(bob).getByRole("button", { name: /admin|Remove/ }).count(), 0);
    const overflow = await bob.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the panel scrolls sideways at phone width by ${overflow}px`);

    // Alice renames and makes Bob an admin; Bob's open panel follows live.
    await alice.getByRole("button", { name: "Group settings" }).click();
    await settings(alice).getByLabel("Group name").fill("Beach weekend");
    await settings(alice).getByRole("button", { name: "Rename" }).click();
    await settings(alice).getByRole("button", { name: "Make Bob Builder an admin" }).click();
    await settings(alice).getByRole("button", { name: "Remove Bob Builder as admin" }).waitFor();
    await bob.locator(".conversation-header h2", { hasText: "Beach weekend" }).waitFor();
    await settings(bob).getByRole("button", { name: "Remove Alice Admin from the group" }).waitFor();
    assert.equal(await settings(bob).locator(".role-badge").count(), 2);
    await bob.screenshot({ path: path.join(screenshotDir, "12-phone-group-settings-dark.png") });

    // Bob steps down; Alice, the last admin again, is told Bob takes over if she leaves.
    await settings(bob).getByRole("button", { name: "Step down as admin" }).click();
    await settings(bob).getByText("Only admins can rename").waitFor();
    await settings(alice).getByRole("button", { name: "Leave group" }).click();
    await settings(alice).getByText("Bob Builder will become admin").waitFor();
    await alice.screenshot({ path: path.join(screenshotDir, "13-group-settings-leave.png") });
    await settings(alice).getByRole("button", { name: "Leave", exact: true }).click();
    await settings(alice).waitFor({ state: "detached" });
    await alice.locator(".conversation-list .row", { hasText: "Beach weekend" }).waitFor({ state: "detached" });

    // Bob is the admin now: the rename field appears in his open panel, with the
    // name Alice gave the group.
    assert.equal(await settings(bob).getByLabel("Group name").inputValue(), "Beach weekend");
    await settings(bob).getByText("You are the last member, so you cannot leave.").waitFor();
  });
});
