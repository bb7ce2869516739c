/**
 * The chat's effects layer: everything that talks to the outside — the WebSocket,
 * the HTTP API, timers, the clock — around the pure reducer (reducer.ts) that holds
 * the rules. Each method does its I/O and dispatches events; only the reducer changes
 * the state.
 *
 * Components read the state through `useSyncExternalStore` (store/hooks.tsx) and call
 * the methods here. The store talks to the server through two narrow ports —
 * `ChatApi` (api/client.ts) and `ChatTransport` (the WebSocket, `attach`ed and
 * detached as it comes and goes) — so tests drive it with fakes.
 *
 * What is decided here, being about I/O rather than state:
 * - the first `sync` waits for the conversation list, and every `ready` sends one
 *   from the cursor, then resends what never got an ack;
 * - a send unacknowledged after ACK_TIMEOUT_MS fails, unless the connection dropped
 *   meanwhile (then it goes again after the next `ready`);
 * - read receipts go out only for the conversation on screen while the page is visible;
 * - edits, deletions and reactions follow the same path as sends: shown at once,
 *   resent with the same client_msg_id after a reconnect, dropped with a notice when
 *   refused or never acknowledged;
 * - a live message that mentions me, or any in a direct conversation, raises a
 *   notification while the page is hidden (the `ChatNotifier` decides if it may).
 */
import type {
  ClientFrame,
  Conversation,
  ConversationId,
  Me,
  Message,
  MessageId,
  SearchPage,
  ServerFrame,
  UpdateConversation,
  User,
  UserId,
} from "../protocol";
import { MAX_BODY_CHARS } from "../protocol";
import type { ChatApi } from "../api/client";
import { ApiError } from "../api/errors";
import { messageId, newUuid, nextId } from "../lib/ids";
import { isBodyTooLong } from "../lib/messageBody";
import { backoffDelayMs, type BackoffOptions } from "../realtime/backoff";
import type { ConnectionStatus } from "../realtime/socket";
import type { ChatEvent } from "./events";
import { chatReducer } from "./reducer";
import { withoutMember } from "./roles";
import { notificationFor, readReceiptDue } from "./selectors";
import { withMyChanges } from "./slices/changes";
import { findMessage, newerPageRange, olderPageCursor, shownMessages } from "./slices/messages";
import { initialChatState, type ChangeOp, type ChatState, type OutgoingChange, type OutgoingMessage } from "./state";
import { Timeouts } from "./timeouts";

export interface ChatTransport {
  readonly isReady: boolean;
  readonly status: ConnectionStatus;
  send(frame: ClientFrame): boolean;
  onFrame(fn: (frame: ServerFrame) => void): () => void;
  onReady(fn: (user: User) => void): () => void;
  onStatus(fn: (status: ConnectionStatus) => void): () => void;
}

/** Raises a browser notification, if the user allowed them (notifications.ts). */
export interface ChatNotifier {
  notify(n: { title: string; body: string; conversationId: ConversationId }): void;
}

const NO_NOTIFIER: ChatNotifier = { notify: () => undefined };

export const ACK_TIMEOUT_MS = 10_000;
/** Messages either side of one the conversation is opened at. */
export const AROUND_PAGE = 25;
export const TYPING_SHOW_MS = 6_000;
export const TYPING_SEND_EVERY_MS = 3_000;
export const HISTORY_PAGE = 50;
/**
 * Where a sync starts when nothing has been seen yet: every id is newer, so it still
 * replays whatever arrived since the list was fetched (a sync without `since` replays
 * nothing).
 */
const BEFORE_EVERY_MESSAGE = messageId("0");
/** Waits between refused syncs: from about a second, doubling, to at most 15 s. */
export const SYNC_BACKOFF: BackoffOptions = { baseMs: 1_000, capMs: 15_000 };

type Listener = () => void;

export class ChatStore {
  private state: ChatState;
  private readonly listeners = new Set<Listener>();
  /** The connection followed now; while there is none, sends wait, pending. */
  private transport: ChatTransport | null = null;
  private detachTransport: (() => void) | null = null;
  /** By client_msg_id: fails the send when no ack comes. */
  private readonly ackTimeouts = new Timeouts<string>();
  /** By conversation and user: hides a typing indicator nobody renewed. */
  private readonly typingTimeouts = new Timeouts<string>();
  /** When I last told a conversation I am typing, to throttle it. */
  private readonly typingSentAt = new Map<ConversationId, number>();
  /** Conversations being fetched because a message named them; one request each. */
  private readonly fetchingConversation = new Map<ConversationId, Promise<void>>();
  /** Messages being fetched to quote them, and those the server does not have (any more). */
  private readonly fetchingQuote = new Map<MessageId, Promise<void>>();
  /** The latest list request: the first `sync` waits for it. */
  private listLoad: Promise<void> | null = null;
  private readyCount = 0;
  /** A refused `sync` (history catching up after a node died) goes again after this. */
  private readonly syncRetry = new Timeouts<"sync">();
  /** Refused syncs in a row, for the backoff; a `synced` resets it. */
  private syncRefusals = 0;

  constructor(
    me: User,
    private readonly api: ChatApi,
    private readonly now: () => number = Date.now,
    private readonly notifier: ChatNotifier = NO_NOTIFIER,
  ) {
    this.state = initialChatState(me, "offline");
  }

  /**
   * Follows a connection: its frames, its `ready` and its status. Returns the detach.
   * The store outlives its connections, so a component that remounts (StrictMode)
   * starts a new socket without losing the chat.
   */
  attach(transport: ChatTransport): () => void {
    this.detachTransport?.();
    this.transport = transport;
    const unsubscribe = [
      transport.onFrame((f) => this.handleFrame(f)),
      transport.onReady(() => void this.handleReady()),
      transport.onStatus((status) => this.handleStatus(status)),
    ];
    this.handleStatus(transport.status);
    const detach = () => {
      unsubscribe.forEach((off) => off());
      if (this.transport !== transport) return;
      this.transport = null;
      this.detachTransport = null;
      this.handleStatus("offline");
    };
    this.detachTransport = detach;
    return detach;
  }

  /** Sends a frame if a connection is ready for it; false otherwise. */
  private send(frame: ClientFrame): boolean {
    return this.transport?.send(frame) ?? false;
  }

  // ---- subscription (useSyncExternalStore) ----

  subscribe = (fn: Listener): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getState = (): ChatState => this.state;

  dispose(): void {
    this.detachTransport?.();
    this.ackTimeouts.cancelAll();
    this.typingTimeouts.cancelAll();
    this.syncRetry.cancelAll();
    this.listeners.clear();
  }

  private dispatch(event: ChatEvent): void {
    const next = chatReducer(this.state, event);
    if (next === this.state) return;
    this.state = next;
    this.listeners.forEach((fn) => fn());
  }

  // ---- loading ----

  /** Fetches the conversation list; the first call happens before `sync` is sent. */
  loadConversations(): Promise<void> {
    const p = this.api.listConversations().then((conversations) => {
      this.dispatch({ type: "conversations_listed", conversations });
      this.markActiveRead();
    });
    this.listLoad = p;
    return p;
  }

  /** Loads the newest page of history (live messages merge in). */
  async loadLatest(id: ConversationId): Promise<void> {
    const page = await this.api.history(id, { limit: HISTORY_PAGE });
    this.dispatch({ type: "history_loaded", conversationId: id, page });
    this.markRead(id);
  }

  /** Loads the page before the oldest message held; used when scrolling up. */
  async loadOlder(id: ConversationId): Promise<void> {
    const before = olderPageCursor(this.state.messages[id]);
    if (!before) return;
    this.dispatch({ type: "older_history_requested", conversationId: id });
    try {
      const page = await this.api.history(id, { before, limit: HISTORY_PAGE });
      this.dispatch({ type: "older_history_loaded", conversationId: id, page });
    } catch (e) {
      this.dispatch({ type: "older_history_failed", conversationId: id });
      throw e;
    }
  }

  /** Loads a page into the gap above the messages shown, after opening at an old one. */
  async loadNewer(id: ConversationId): Promise<void> {
    const range = newerPageRange(this.state.messages[id]);
    if (!range) return;
    this.dispatch({ type: "newer_history_requested", conversationId: id });
    try {
      const page = await this.api.history(id, { ...range, limit: HISTORY_PAGE });
      this.dispatch({ type: "newer_history_loaded", conversationId: id, page });
    } catch (e) {
      this.dispatch({ type: "newer_history_failed", conversationId: id });
      throw e;
    }
  }

  /**
   * Opens the conversation at a message (a search result, a reply's original) and
   * highlights it; loads the history around it unless it is on screen already.
   */
  async openAtMessage(conversationId: ConversationId, id: MessageId): Promise<void> {
    // Opened here rather than by the URL, so that it does not load the newest page instead.
    this.dispatch({ type: "conversation_opened", conversationId });
    this.dispatch({ type: "message_focused", focus: { conversationId, messageId: id } });
    if (shownMessages(this.state.messages[conversationId]).some((m) => m.id === id)) {
      this.markRead(conversationId);
      return;
    }
    try {
      const [older, newer] = await Promise.all([
        this.api.history(conversationId, { before: nextId(id), limit: AROUND_PAGE }),
        this.api.history(conversationId, { after: id, limit: AROUND_PAGE }),
      ]);
      this.dispatch({ type: "history_around_loaded", conversationId, older, newer });
      this.markRead(conversationId);
    } catch {
      this.showNotice("Could not load that message. Try again when you are connected.");
    }
  }

  /** The highlight of a focused message is over. */
  clearFocus(): void {
    if (this.state.view.focus) this.dispatch({ type: "message_focused", focus: null });
  }

  /**
   * Fetches a message to quote it (the original of a reply, not loaded); once. A
   * message the server does not have stays missing, shown as "original deleted".
   */
  fetchQuoted(conversationId: ConversationId, id: MessageId): void {
    if (findMessage(this.state.messages[conversationId], id) !== undefined || this.fetchingQuote.has(id)) return;
    const p = this.api
      .getMessage(conversationId, id)
      .then((message) => this.dispatch({ type: "message_fetched", message }))
      .catch((e: unknown) => {
        // Not found stays not found; anything else may be retried by the next render.
        if (e instanceof ApiError && e.code === "not_found") {
          this.dispatch({ type: "message_not_found", conversationId, messageId: id });
        } else {
          this.fetchingQuote.delete(id);
        }
      });
    this.fetchingQuote.set(id, p);
  }

  /** Fetches a conversation we learned about from a message (e.g. added while offline). */
  private fetchConversation(id: ConversationId): Promise<void> {
    let p = this.fetchingConversation.get(id);
    if (!p) {
      p = this.api
        .getConversation(id)
        .then((conversation) => this.dispatch({ type: "conversation_received", conversation }))
        .catch(() => undefined)
        .finally(() => this.fetchingConversation.delete(id));
      this.fetchingConversation.set(id, p);
    }
    return p;
  }

  // ---- navigation and visibility ----

  openConversation(id: ConversationId | null): void {
    if (this.state.view.activeId === id) return;
    this.dispatch({ type: "conversation_opened", conversationId: id });
    if (!id) return;
    if (!this.state.messages[id]?.loaded) {
      this.loadLatest(id).catch(() => this.showNotice("Could not load messages. They will appear when you reconnect."));
    } else {
      this.markRead(id);
    }
  }

  /** Whether the user can see the page; read receipts are sent only when they can. */
  setVisible(visible: boolean): void {
    this.dispatch({ type: "visibility_changed", visible });
    if (visible) this.markActiveRead();
  }

  showNotice(notice: string | null): void {
    this.dispatch({ type: "notice_shown", notice });
  }

  // ---- sending ----

  /** Optimistically adds the message and sends it; returns its client_msg_id. */
  sendMessage(conversationId: ConversationId, text: string, replyTo?: MessageId): string | null {
    const body = this.acceptableBody(text);
    if (!body) return null;
    const outgoing: OutgoingMessage = {
      client_msg_id: newUuid(),
      conversation_id: conversationId,
      body,
      ...(replyTo ? { reply_to: replyTo } : {}),
      created_at: new Date(this.now()).toISOString(),
      status: "pending",
    };
    this.dispatch({ type: "message_queued", outgoing });
    // The message itself ends my typing for the others; the next keystroke may say so again.
    this.typingSentAt.delete(conversationId);
    this.transmit(outgoing);
    return outgoing.client_msg_id;
  }

  /** The trimmed body, or null (with a notice if too long) when it cannot be sent. */
  private acceptableBody(text: string): string | null {
    const body = text.trim();
    if (!body) return null;
    if (isBodyTooLong(body)) {
      this.showNotice(`Messages can be at most ${MAX_BODY_CHARS} characters.`);
      return null;
    }
    return body;
  }

  /** Sends a failed message again with the same client_msg_id (idempotent on the server). */
  retry(clientMsgId: string): void {
    this.dispatch({ type: "send_retried", clientMsgId });
    const out = this.state.outbox[clientMsgId];
    if (out) this.transmit(out);
  }

  discard(clientMsgId: string): void {
    this.ackTimeouts.cancel(clientMsgId);
    this.dispatch({ type: "outgoing_discarded", clientMsgId });
  }

  /** Sends if connected; otherwise the message waits, pending, for the next `ready`. */
  private transmit(out: OutgoingMessage): void {
    const sent = this.send({
      type: "send",
      conversation_id: out.conversation_id,
      client_msg_id: out.client_msg_id,
      body: out.body,
      ...(out.reply_to ? { reply_to: out.reply_to } : {}),
    });
    if (!sent) return;
    this.ackTimeouts.start(out.client_msg_id, ACK_TIMEOUT_MS, () =>
      this.dispatch({ type: "send_failed", clientMsgId: out.client_msg_id, error: "Not delivered" }),
    );
  }

  private failOutgoing(clientMsgId: string, error: string): void {
    this.ackTimeouts.cancel(clientMsgId);
    this.dispatch({ type: "send_failed", clientMsgId, error });
  }

  // ---- changing messages ----

  /** Replaces the body of my message; false if the text cannot be sent (nothing changes). */
  editMessage(conversationId: ConversationId, id: MessageId, text: string): boolean {
    const body = this.acceptableBody(text);
    if (!body) return false;
    const current = this.shownMessage(conversationId, id);
    if (current && current.body === body) return true; // nothing to change
    this.change(conversationId, id, { kind: "edit", body });
    return true;
  }

  deleteMessage(conversationId: ConversationId, id: MessageId): void {
    this.change(conversationId, id, { kind: "delete" });
  }

  /** Adds my reaction with this emoji, or takes it back if I have it already. */
  toggleReaction(conversationId: ConversationId, id: MessageId, emoji: string): void {
    const current = this.shownMessage(conversationId, id);
    const mine = current?.reactions.some((r) => r.emoji === emoji && r.me) ?? false;
    this.change(conversationId, id, { kind: "react", emoji, on: !mine });
  }

  /** The message as shown: with my changes on their way. */
  private shownMessage(conversationId: ConversationId, id: MessageId): Message | undefined {
    const m = findMessage(this.state.messages[conversationId], id);
    return m ? withMyChanges(m, Object.values(this.state.changes), this.state.me.id) : undefined;
  }

  private change(conversationId: ConversationId, id: MessageId, op: ChangeOp): void {
    const change: OutgoingChange = {
      client_msg_id: newUuid(),
      conversation_id: conversationId,
      message_id: id,
      op,
      created_at: new Date(this.now()).toISOString(),
      status: "pending",
    };
    this.dispatch({ type: "change_queued", change });
    this.transmitChange(change);
  }

  /** Sends if connected; otherwise the change waits, pending, for the next `ready`. */
  private transmitChange(c: OutgoingChange): void {
    const sent = this.send(changeFrame(c));
    if (!sent) return;
    this.ackTimeouts.start(c.client_msg_id, ACK_TIMEOUT_MS, () =>
      this.refuseChange(c.client_msg_id, "The server did not confirm your change. Try again."),
    );
  }

  private refuseChange(clientMsgId: string, why: string): void {
    const c = this.state.changes[clientMsgId];
    this.ackTimeouts.cancel(clientMsgId);
    this.dispatch({ type: "change_failed", clientMsgId });
    if (c) this.showNotice(`${CHANGE_VERB[c.op.kind]}: ${why}`);
  }

  /** Tells the others the user is typing, at most every few seconds. */
  notifyTyping(conversationId: ConversationId): void {
    const last = this.typingSentAt.get(conversationId) ?? 0;
    if (this.now() - last < TYPING_SEND_EVERY_MS) return;
    if (this.send({ type: "typing", conversation_id: conversationId })) {
      this.typingSentAt.set(conversationId, this.now());
    }
  }

  /** Marks the conversation read up to its newest message, if it is on screen and that is news. */
  markRead(conversationId: ConversationId): void {
    const { view, conversations } = this.state;
    if (!view.visible || view.activeId !== conversationId) return;
    if (!conversations.byId[conversationId]) return;
    this.dispatch({ type: "conversation_seen", conversationId });
    const upTo = readReceiptDue(this.state, conversationId);
    if (upTo && this.send({ type: "read", conversation_id: conversationId, message_id: upTo })) {
      this.dispatch({ type: "read_receipt", conversationId, userId: this.state.me.id, messageId: upTo });
    }
  }

  private markActiveRead(): void {
    const active = this.state.view.activeId;
    if (active) this.markRead(active);
  }

  // ---- conversations and people ----

  /** What I chose about the training dataset (the operator's default until I choose). */
  datasetConsent(): Promise<Me> {
    return this.api.me();
  }

  setDatasetConsent(allowed: boolean): Promise<Me> {
    return this.api.updateMe({ dataset_consent: allowed });
  }

  /** Messages matching `q` in my conversations, newest first, the page before `before`. */
  searchMessages(q: string, before?: MessageId, limit?: number): Promise<SearchPage> {
    return this.api.searchMessages({ q, before, limit });
  }

  async searchUsers(q: string): Promise<User[]> {
    const users = await this.api.searchUsers(q);
    return users.filter((u) => u.id !== this.state.me.id);
  }

  async startDirect(userId: UserId): Promise<Conversation> {
    return this.received(await this.api.createDirect(userId));
  }

  async createGroup(title: string, memberIds: UserId[]): Promise<Conversation> {
    return this.received(await this.api.createGroup(title, memberIds));
  }

  async addMembers(conversationId: ConversationId, userIds: UserId[]): Promise<void> {
    // The answer is the conversation with its new members.
    this.received(await this.api.addMembers(conversationId, userIds));
  }

  /** Renames a group or makes or unmakes admins; the answer is the changed group. */
  async updateConversation(conversationId: ConversationId, change: UpdateConversation): Promise<void> {
    this.received(await this.api.updateConversation(conversationId, change));
  }

  /** Removes someone else from a group (as an admin). */
  async removeMember(conversationId: ConversationId, userId: UserId): Promise<void> {
    await this.api.removeMember(conversationId, userId);
    // The answer has no body; show the change now rather than at the `conversation` frame.
    const conv = this.state.conversations.byId[conversationId];
    if (conv) this.received(withoutMember(conv, userId));
  }

  /** Leaves a group: it goes from the list at once (the `removed` frame follows). */
  async leaveConversation(conversationId: ConversationId): Promise<void> {
    await this.api.removeMember(conversationId, this.state.me.id);
    this.dispatch({ type: "conversation_removed", conversationId });
  }

  private received(conversation: Conversation): Conversation {
    this.dispatch({ type: "conversation_received", conversation });
    return conversation;
  }

  // ---- the WebSocket ----

  private handleStatus(status: ConnectionStatus): void {
    // Unacknowledged sends are not failures yet: they go again after the next `ready`.
    if (status !== "online") {
      this.ackTimeouts.cancelAll();
      // The next `ready` syncs anyway.
      this.syncRetry.cancelAll();
    }
    this.dispatch({ type: "connection_changed", status });
  }

  private async handleReady(): Promise<void> {
    const first = this.readyCount === 0;
    this.readyCount += 1;
    // The first sync replays from the list snapshot, so wait for it.
    if (this.listLoad) await this.listLoad.catch(() => undefined);
    this.syncRefusals = 0;
    this.startSync();
    // Anything that never got an ack goes again, with the same client_msg_id.
    for (const out of Object.values(this.state.outbox)) {
      if (out.status === "pending") this.transmit(out);
    }
    for (const c of Object.values(this.state.changes)) {
      if (c.status === "pending") this.transmitChange(c);
    }
    // A reconnect may have missed `conversation` frames and read receipts.
    if (!first || !this.state.conversations.loaded) this.loadConversations().catch(() => undefined);
    this.markActiveRead();
  }

  private startSync(): void {
    this.send({ type: "sync", since: this.state.sync.lastSeenId ?? BEFORE_EVERY_MESSAGE });
    this.dispatch({ type: "sync_started" });
  }

  /**
   * A sync refused because history is still catching up (a node died and its share
   * of the log is being taken over): ask again, backing off, never sooner than the
   * server said. Live messages keep arriving meanwhile.
   */
  private retrySync(retryAfterMs: number | undefined): void {
    const delay = Math.max(retryAfterMs ?? 0, backoffDelayMs(this.syncRefusals, Math.random, SYNC_BACKOFF));
    this.syncRefusals += 1;
    this.syncRetry.start("sync", delay, () => this.startSync());
  }

  private handleFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case "message":
        if (frame.message.sender_id === this.state.me.id) this.ackTimeouts.cancel(frame.message.client_msg_id);
        this.maybeNotify(frame.message);
        this.afterMessage(frame.message.conversation_id, () =>
          this.dispatch({ type: "message_received", message: frame.message, live: true }),
        );
        break;
      case "edited":
      case "deleted":
      case "reaction":
        if (frame.user_id === this.state.me.id) this.ackTimeouts.cancel(frame.client_msg_id);
        this.dispatch({ type: "message_changed", change: frame });
        break;
      case "ack":
        this.ackTimeouts.cancel(frame.client_msg_id);
        if (this.state.changes[frame.client_msg_id]) {
          this.dispatch({ type: "change_acked", clientMsgId: frame.client_msg_id });
          break;
        }
        // An ack for a message no longer waiting (discarded, or its echo came first) is old news.
        if (!this.state.outbox[frame.client_msg_id]) break;
        this.afterMessage(frame.conversation_id, () =>
          this.dispatch({
            type: "send_acked",
            clientMsgId: frame.client_msg_id,
            messageId: frame.message_id,
            conversationId: frame.conversation_id,
          }),
        );
        break;
      case "typing":
        this.showTyping(frame.conversation_id, frame.user_id);
        break;
      case "read":
        this.dispatch({
          type: "read_receipt",
          conversationId: frame.conversation_id,
          userId: frame.user_id,
          messageId: frame.message_id,
        });
        break;
      case "presence":
        this.dispatch({ type: "presence_changed", userId: frame.user_id, online: frame.online });
        break;
      case "conversation":
        this.dispatch({ type: "conversation_received", conversation: frame.conversation });
        break;
      case "removed":
        this.dispatch({ type: "conversation_removed", conversationId: frame.conversation_id });
        break;
      case "synced":
        this.syncRefusals = 0;
        this.dispatch({ type: "synced", until: frame.until });
        break;
      case "error":
        if (!frame.client_msg_id && frame.code === "unavailable" && this.state.sync.replaying) this.retrySync(frame.retry_after_ms);
        else if (frame.client_msg_id && this.state.changes[frame.client_msg_id]) this.refuseChange(frame.client_msg_id, frame.message);
        else if (frame.client_msg_id) this.failOutgoing(frame.client_msg_id, frame.message);
        else this.showNotice(frame.message);
        break;
      case "ready":
      case "pong":
        break;
    }
  }

  /**
   * Applies a message, then follows up: a conversation we did not know is fetched
   * (we were added while away), the one on screen is marked read.
   */
  private afterMessage(conversationId: ConversationId, apply: () => void): void {
    const known = !!this.state.conversations.byId[conversationId];
    apply();
    if (!known) void this.fetchConversation(conversationId);
    else this.markRead(conversationId);
  }

  /** A notification for a live message that deserves one, before it counts as seen. */
  private maybeNotify(m: Message): void {
    const n = notificationFor(this.state, m);
    if (n) this.notifier.notify({ ...n, conversationId: m.conversation_id });
  }

  private showTyping(conversationId: ConversationId, userId: UserId): void {
    const until = this.now() + TYPING_SHOW_MS;
    this.dispatch({ type: "typing_started", conversationId, userId, until });
    this.typingTimeouts.start(`${conversationId}/${userId}`, TYPING_SHOW_MS, () =>
      this.dispatch({ type: "typing_expired", conversationId, userId, until }),
    );
  }
}

/** What the notice of a refused change calls it. */
const CHANGE_VERB: Record<ChangeOp["kind"], string> = {
  edit: "Edit not saved",
  delete: "Not deleted",
  react: "Reaction not saved",
};

/** The frame that carries a change; the same one each time it is sent. */
function changeFrame(c: OutgoingChange): ClientFrame {
  const target = { conversation_id: c.conversation_id, message_id: c.message_id, client_msg_id: c.client_msg_id };
  switch (c.op.kind) {
    case "edit":
      return { type: "edit", ...target, body: c.op.body };
    case "delete":
      return { type: "delete", ...target };
    case "react":
      return { type: "react", ...target, emoji: c.op.emoji, on: c.op.on };
  }
}
