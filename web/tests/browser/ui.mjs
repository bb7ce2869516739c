// @ts-check
/** What a user does in the client, as steps the browser tests share. */

/** @typedef {import("playwright-core").Page} Page */

export const PASSWORD = "correct horse battery";

/** @param {Page} page @param {string} url @param {string} username @param {{displayName?: string, beforeSubmit?: () => Promise<void>}} [opts] */
export async function signUp(page, url, username, opts = {}) {
  await page.goto(url);
  await page.getByRole("button", { name: "Create an account" }).click();
  await page.getByLabel("Username").fill(username);
  if (opts.displayName) await page.getByLabel("Display name").fill(opts.displayName);
  await page.getByLabel("Password").fill(PASSWORD);
  await opts.beforeSubmit?.();
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.getByLabel("Search people").waitFor();
}

/** @param {Page} page @param {string} url @param {string} username */
export async function logIn(page, url, username) {
  await page.goto(url);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByLabel("Search people").waitFor();
}

/** Types into the composer and presses Enter. @param {Page} page @param {string} text */
export async function send(page, text) {
  const box = page.locator(".composer textarea");
  await box.fill(text);
  await box.press("Enter");
}

/** Waits until a confirmed (not pending) message with this text is shown. @param {Page} page @param {string} text */
export async function seeMessage(page, text) {
  await page.locator(".message:not([data-status]) .body", { hasText: text }).first().waitFor();
}

/** @param {Page} page @param {string} text */
export async function countMessages(page, text) {
  return page.locator(".message .body", { hasText: text }).count();
}

/**
 * Creates a group with the people found by these usernames (each checked by its
 * display name) and waits until it is open. @param {Page} page @param {string} title
 * @param {Array<{ username: string, displayName: string }>} people
 */
export async function createGroup(page, title, people) {
  await page.getByRole("button", { name: "New group" }).click();
  const dialog = page.getByRole("dialog", { name: "New group" });
  await dialog.getByLabel("Group name").fill(title);
  for (const { username, displayName } of people) {
    await dialog.getByPlaceholder("Search by username").fill(username);
    await dialog.getByLabel(`Add ${displayName}`).check();
  }
  await dialog.getByRole("button", { name: "Create group" }).click();
  await page.locator(".conversation-header h2", { hasText: title }).waitFor();
}

/** @param {Page} page @param {string} title */
export async function openConversation(page, title) {
  await page.locator(".conversation-list .row", { hasText: title }).first().click();
  await page.locator(".conversation-header h2", { hasText: title }).waitFor();
}

/** The connection banner's state: online, connecting, reconnecting or offline. @param {Page} page */
export async function connectionState(page) {
  return page.locator(".connection").getAttribute("data-state");
}

/** @param {Page} page @param {string} state */
export async function waitForConnection(page, state, timeout = 30_000) {
  await page.waitForFunction((s) => document.querySelector(".connection")?.getAttribute("data-state") === s, state, {
    timeout,
  });
}
