/**
 * The client's state of the chat and every action on it, independent of React.
 *
 * Components read it through `useSyncExternalStore` (store/hooks.tsx); state objects
 * are replaced, never mutated, so a component re-renders only when its slice changes.
 * The store talks to the server through two narrow ports — `ChatApi` (api/client.ts)
 * and `ChatTransport` (the WebSocket) — so tests drive it with fakes.
 *
 * Consistency rules (DESIGN.md §2, §6):
 * - messages are deduplicated by id wherever they come from (live, sync, history);
 * - `lastSeenId` advances only from the live stream, `synced` and the conversation list
 *   snapshot, and is what the next `sync` asks to replay from; while a sync is running
 *   what arrives only raises `syncHigh`, taken on at `synced`, because a connection
 *   that drops mid-replay leaves the older part of the replay undelivered;
 * - unread counts grow only for messages newer than the conversation's known last one,
 *   so a sync replay of messages the list already counted adds nothing;
 * - an outgoing message keeps its client_msg_id across retries and reconnects, so the
 *   server never stores it twice.
 */
import type {
  ClientFrame,
  Conversation,
  ConversationId,
  Message,
  MessageId,
  ServerFrame,
  User,
  UserId,
} from "../protocol";
import { MAX_BODY_CHARS } from "../protocol";
import type { ChatApi } from "../api/client";
import { compareIds, maxId, messageId, newUuid } from "../lib/ids";
import type { ConnectionStatus } from "../realtime/socket";
import { mergeMessages } from "./messages";

export interface ChatTransport {
  readonly isReady: boolean;
  readonly status: ConnectionStatus;
  send(frame: ClientFrame): boolean;
  onFrame(fn: (frame: ServerFrame) => void): () => void;
  onReady(fn: (user: User) => void): () => void;
  onStatus(fn: (status: ConnectionStatus) => void): () => void;
}

export type OutgoingStatus = "pending" | "failed";

export interface OutgoingMessage {
  client_msg_id: string;
  conversation_id: ConversationId;
  body: string;
  created_at: string;
  status: OutgoingStatus;
  error?: string;
}

export interface ConversationMessages {
  items: Message[];
  /** Older history remains on the server. */
  hasMore: boolean;
  /** The newest page has been fetched at least once. */
  loaded: boolean;
  loadingOlder: boolean;
}

export interface ChatState {
  me: User;
  connection: ConnectionStatus;
  conversations: Record<ConversationId, Conversation>;
  conversationsLoaded: boolean;
  messages: Record<ConversationId, ConversationMessages>;
  outbox: Record<string, OutgoingMessage>;
  presence: Record<UserId, boolean>;
  /** conversation → typing user → when the indicator expires (ms epoch). */
  typing: Record<ConversationId, Record<UserId, number>>;
  activeId: ConversationId | null;
  lastSeenId: MessageId | null;
  notice: string | null;
}

export const ACK_TIMEOUT_MS = 10_000;
export const TYPING_SHOW_MS = 6_000;
export const TYPING_SEND_EVERY_MS = 3_000;
export const HISTORY_PAGE = 50;
/**
 * Where a sync starts when nothing has been seen yet: every id is newer, so it still
 * replays whatever arrived since the list was fetched (a sync without `since` replays
 * nothing).
 */
const BEFORE_EVERY_MESSAGE = messageId("0");

const EMPTY_MESSAGES: ConversationMessages = { items: [], hasMore: true, loaded: false, loadingOlder: false };

type Listener = () => void;

export class ChatStore {
  private state: ChatState;
  private listeners = new Set<Listener>();
  private unsubscribers: Array<() => void> = [];
  private ackTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private typingSentAt = new Map<ConversationId, number>();
  private fetchingConversation = new Map<ConversationId, Promise<void>>();
  private listLoad: Promise<void> | null = null;
  private visible = true;
  private readyCount = 0;
  /** Between sending `sync` and its `synced`: the newest id seen meanwhile. */
  private syncing = false;
  private syncHigh: MessageId | null = null;

  constructor(
    me: User,
    private readonly api: ChatApi,
    private readonly transport: ChatTransport,
    private readonly now: () => number = Date.now,
  ) {
    this.state = {
      me,
      connection: transport.status,
      conversations: {},
      conversationsLoaded: false,
      messages: {},
      outbox: {},
      presence: {},
      typing: {},
      activeId: null,
      lastSeenId: null,
      notice: null,
    };
    this.unsubscribers.push(
      transport.onFrame((f) => this.handleFrame(f)),
      transport.onReady(() => void this.handleReady()),
      // While disconnected nobody's presence is known; the snapshot after `ready` refills it.
      transport.onStatus((connection) => this.handleStatus(connection)),
    );
  }

  // ---- subscription (useSyncExternalStore) ----

  subscribe = (fn: Listener): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getState = (): ChatState => this.state;

  dispose(): void {
    this.unsubscribers.forEach((u) => u());
    this.ackTimers.forEach((t) => clearTimeout(t));
    this.ackTimers.clear();
    this.listeners.clear();
  }

  private update(patch: Partial<ChatState>): void {
    this.state = { ...this.state, ...patch };
    this.listeners.forEach((fn) => fn());
  }

  // ---- loading ----

  /** Fetches the conversation list; the first call happens before `sync` is sent. */
  loadConversations(): Promise<void> {
    const p = this.api.listConversations().then((list) => this.applyConversationList(list));
    this.listLoad = p;
    return p;
  }

  private applyConversationList(list: Conversation[]): void {
    const conversations: Record<ConversationId, Conversation> = {};
    let lastSeenId = this.state.lastSeenId;
    for (const server of list) {
      const local = this.state.conversations[server.id];
      const localLast = local?.last_message;
      const serverLast = server.last_message;
      const localIsNewer = localLast && (!serverLast || compareIds(localLast.id, serverLast.id) > 0);
      conversations[server.id] = localIsNewer
        ? { ...server, last_message: localLast, unread_count: local.unread_count }
        : server;
      if (serverLast) lastSeenId = this.seen(lastSeenId, serverLast.id);
    }
    const activeId = this.state.activeId && conversations[this.state.activeId] ? this.state.activeId : null;
    this.update({ conversations, conversationsLoaded: true, lastSeenId, activeId });
    if (activeId) this.markRead(activeId);
  }

  private upsertConversation(c: Conversation): void {
    const local = this.state.conversations[c.id];
    const merged =
      local?.last_message && (!c.last_message || compareIds(local.last_message.id, c.last_message.id) > 0)
        ? { ...c, last_message: local.last_message, unread_count: local.unread_count }
        : c;
    this.update({ conversations: { ...this.state.conversations, [c.id]: merged } });
  }

  /** Fetches a conversation we learned about from a message (e.g. added while offline). */
  private fetchConversation(id: ConversationId): Promise<void> {
    let p = this.fetchingConversation.get(id);
    if (!p) {
      p = this.api
        .getConversation(id)
        .then((c) => this.upsertConversation(c))
        .catch(() => undefined)
        .finally(() => this.fetchingConversation.delete(id));
      this.fetchingConversation.set(id, p);
    }
    return p;
  }

  /** Loads the newest page of history (once per conversation; live messages merge in). */
  async loadLatest(id: ConversationId): Promise<void> {
    const page = await this.api.history(id, { limit: HISTORY_PAGE });
    const cur = this.state.messages[id] ?? EMPTY_MESSAGES;
    const hasMore = cur.loaded ? cur.hasMore : page.has_more;
    this.setMessages(id, { ...cur, items: mergeMessages(cur.items, page.messages), loaded: true, hasMore });
    this.markRead(id);
  }

  /** Loads the page before the oldest message held; used when scrolling up. */
  async loadOlder(id: ConversationId): Promise<void> {
    const cur = this.state.messages[id];
    if (!cur || !cur.loaded || !cur.hasMore || cur.loadingOlder) return;
    const oldest = cur.items[0]?.id;
    if (!oldest) return;
    this.setMessages(id, { ...cur, loadingOlder: true });
    try {
      const page = await this.api.history(id, { before: oldest, limit: HISTORY_PAGE });
      const now = this.state.messages[id] ?? cur;
      this.setMessages(id, {
        ...now,
        items: mergeMessages(now.items, page.messages),
        hasMore: page.has_more,
        loadingOlder: false,
      });
    } catch (e) {
      const now = this.state.messages[id] ?? cur;
      this.setMessages(id, { ...now, loadingOlder: false });
      throw e;
    }
  }

  private setMessages(id: ConversationId, m: ConversationMessages): void {
    this.update({ messages: { ...this.state.messages, [id]: m } });
  }

  // ---- navigation and visibility ----

  openConversation(id: ConversationId | null): void {
    if (this.state.activeId === id) return;
    this.update({ activeId: id });
    if (!id) return;
    if (!this.state.messages[id]?.loaded) {
      this.loadLatest(id).catch(() => this.showNotice("Could not load messages. They will appear when you reconnect."));
    } else {
      this.markRead(id);
    }
  }

  /** Whether the user can see the page; read receipts are sent only when they can. */
  setVisible(visible: boolean): void {
    this.visible = visible;
    if (visible && this.state.activeId) this.markRead(this.state.activeId);
  }

  // ---- sending ----

  /** Optimistically adds the message and sends it; returns its client_msg_id. */
  sendMessage(conversationId: ConversationId, text: string): string | null {
    const body = text.trim();
    if (!body) return null;
    if (body.length > MAX_BODY_CHARS) {
      this.showNotice(`Messages can be at most ${MAX_BODY_CHARS} characters.`);
      return null;
    }
    const out: OutgoingMessage = {
      client_msg_id: newUuid(),
      conversation_id: conversationId,
      body,
      created_at: new Date(this.now()).toISOString(),
      status: "pending",
    };
    this.update({ outbox: { ...this.state.outbox, [out.client_msg_id]: out } });
    this.typingSentAt.delete(conversationId);
    this.transmit(out);
    return out.client_msg_id;
  }

  /** Sends a failed message again with the same client_msg_id (idempotent on the server). */
  retry(clientMsgId: string): void {
    const out = this.state.outbox[clientMsgId];
    if (!out) return;
    const pending: OutgoingMessage = { ...out, status: "pending", error: undefined };
    this.update({ outbox: { ...this.state.outbox, [clientMsgId]: pending } });
    this.transmit(pending);
  }

  discard(clientMsgId: string): void {
    this.clearAckTimer(clientMsgId);
    const { [clientMsgId]: _gone, ...outbox } = this.state.outbox;
    this.update({ outbox });
  }

  /** Sends if connected; otherwise the message waits, pending, for the next `ready`. */
  private transmit(out: OutgoingMessage): void {
    const sent = this.transport.send({
      type: "send",
      conversation_id: out.conversation_id,
      client_msg_id: out.client_msg_id,
      body: out.body,
    });
    if (!sent) return;
    this.clearAckTimer(out.client_msg_id);
    this.ackTimers.set(
      out.client_msg_id,
      setTimeout(() => {
        this.ackTimers.delete(out.client_msg_id);
        this.failOutgoing(out.client_msg_id, "Not delivered");
      }, ACK_TIMEOUT_MS),
    );
  }

  private failOutgoing(clientMsgId: string, error: string): void {
    const out = this.state.outbox[clientMsgId];
    if (!out || out.status === "failed") return;
    this.clearAckTimer(clientMsgId);
    this.update({ outbox: { ...this.state.outbox, [clientMsgId]: { ...out, status: "failed", error } } });
  }

  private clearAckTimer(clientMsgId: string): void {
    const t = this.ackTimers.get(clientMsgId);
    if (t) clearTimeout(t);
    this.ackTimers.delete(clientMsgId);
  }

  /** Tells the others the user is typing, at most every few seconds. */
  notifyTyping(conversationId: ConversationId): void {
    const last = this.typingSentAt.get(conversationId) ?? 0;
    if (this.now() - last < TYPING_SEND_EVERY_MS) return;
    if (this.transport.send({ type: "typing", conversation_id: conversationId })) {
      this.typingSentAt.set(conversationId, this.now());
    }
  }

  /** Marks the conversation read up to its newest message, if that is news. */
  markRead(conversationId: ConversationId): void {
    if (!this.visible || this.state.activeId !== conversationId) return;
    const conv = this.state.conversations[conversationId];
    if (!conv) return;
    const items = this.state.messages[conversationId]?.items ?? [];
    const newest = maxId(items[items.length - 1]?.id, conv.last_message?.id);
    const mine = conv.members.find((m) => m.user.id === this.state.me.id);
    if (conv.unread_count !== 0) this.patchConversation(conversationId, { unread_count: 0 });
    if (!newest || (mine?.last_read_id && compareIds(mine.last_read_id, newest) >= 0)) return;
    if (this.transport.send({ type: "read", conversation_id: conversationId, message_id: newest })) {
      this.applyRead(conversationId, this.state.me.id, newest);
    }
  }

  // ---- conversations and people ----

  async searchUsers(q: string): Promise<User[]> {
    const users = await this.api.searchUsers(q);
    return users.filter((u) => u.id !== this.state.me.id);
  }

  async startDirect(userId: UserId): Promise<Conversation> {
    const c = await this.api.createDirect(userId);
    this.upsertConversation(c);
    return c;
  }

  async createGroup(title: string, memberIds: UserId[]): Promise<Conversation> {
    const c = await this.api.createGroup(title, memberIds);
    this.upsertConversation(c);
    return c;
  }

  async addMembers(conversationId: ConversationId, userIds: UserId[]): Promise<void> {
    // The answer is the conversation with its new members.
    this.upsertConversation(await this.api.addMembers(conversationId, userIds));
  }

  showNotice(notice: string | null): void {
    this.update({ notice });
  }

  // ---- the WebSocket ----

  private handleStatus(connection: ConnectionStatus): void {
    if (connection === "online") {
      this.update({ connection });
      return;
    }
    // Unacknowledged sends are not failures yet: they go again after the next `ready`.
    this.ackTimers.forEach((t) => clearTimeout(t));
    this.ackTimers.clear();
    // While disconnected nobody's presence is known; the snapshot after `ready` refills it.
    this.update({ connection, presence: {} });
  }

  private async handleReady(): Promise<void> {
    const first = this.readyCount === 0;
    this.readyCount += 1;
    // The first sync replays from the list snapshot, so wait for it.
    if (this.listLoad) await this.listLoad.catch(() => undefined);
    this.transport.send({ type: "sync", since: this.state.lastSeenId ?? BEFORE_EVERY_MESSAGE });
    this.syncing = true;
    this.syncHigh = null;
    // Anything that never got an ack goes again, with the same client_msg_id.
    for (const out of Object.values(this.state.outbox)) {
      if (out.status === "pending") this.transmit(out);
    }
    // A reconnect may have missed `conversation` frames and read receipts.
    if (!first || !this.state.conversationsLoaded) this.loadConversations().catch(() => undefined);
    if (this.state.activeId) this.markRead(this.state.activeId);
  }

  handleFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case "message":
        this.applyMessage(frame.message, true);
        break;
      case "ack":
        this.applyAck(frame.client_msg_id, frame.message_id, frame.conversation_id);
        break;
      case "typing":
        this.applyTyping(frame.conversation_id, frame.user_id);
        break;
      case "read":
        this.applyRead(frame.conversation_id, frame.user_id, frame.message_id);
        if (frame.user_id === this.state.me.id) this.patchConversation(frame.conversation_id, { unread_count: 0 });
        break;
      case "presence":
        if (this.state.presence[frame.user_id] !== frame.online) {
          this.update({ presence: { ...this.state.presence, [frame.user_id]: frame.online } });
        }
        break;
      case "conversation":
        this.upsertConversation(frame.conversation);
        break;
      case "removed":
        this.removeConversation(frame.conversation_id);
        break;
      case "synced": {
        this.syncing = false;
        const lastSeenId = maxId(maxId(this.state.lastSeenId, frame.until), this.syncHigh);
        this.syncHigh = null;
        if (lastSeenId !== this.state.lastSeenId) this.update({ lastSeenId });
        break;
      }
      case "error":
        if (frame.client_msg_id) this.failOutgoing(frame.client_msg_id, frame.message);
        else this.showNotice(frame.message);
        break;
      case "ready":
      case "pong":
        break;
    }
  }

  /**
   * Where the next `sync` may start given `id` was just seen: `current` moved on, or,
   * while a sync runs, unchanged (with `id` kept for its `synced`).
   */
  private seen(current: MessageId | null, id: MessageId): MessageId | null {
    if (!this.syncing) return maxId(current, id);
    this.syncHigh = maxId(this.syncHigh, id);
    return current;
  }

  /** A message from the live stream or a sync replay. */
  applyMessage(m: Message, live: boolean): void {
    const me = this.state.me.id;
    const patch: Partial<ChatState> = {};
    const cur = this.state.messages[m.conversation_id];
    if (cur) {
      const items = mergeMessages(cur.items, [m]);
      if (items !== cur.items) patch.messages = { ...this.state.messages, [m.conversation_id]: { ...cur, items } };
    } else {
      patch.messages = { ...this.state.messages, [m.conversation_id]: { ...EMPTY_MESSAGES, items: [m] } };
    }
    if (m.sender_id === me && this.state.outbox[m.client_msg_id]) {
      this.clearAckTimer(m.client_msg_id);
      const { [m.client_msg_id]: _done, ...outbox } = this.state.outbox;
      patch.outbox = outbox;
    }
    const typingHere = this.state.typing[m.conversation_id];
    if (typingHere?.[m.sender_id]) {
      const { [m.sender_id]: _t, ...rest } = typingHere;
      patch.typing = { ...this.state.typing, [m.conversation_id]: rest };
    }
    if (live) {
      const lastSeenId = this.seen(this.state.lastSeenId, m.id);
      if (lastSeenId !== this.state.lastSeenId) patch.lastSeenId = lastSeenId;
    }

    const conv = this.state.conversations[m.conversation_id];
    if (conv) {
      const isNewest = !conv.last_message || compareIds(m.id, conv.last_message.id) > 0;
      if (isNewest) {
        const seeing = this.visible && this.state.activeId === m.conversation_id;
        // Writing in a conversation means having read it; otherwise count what is unseen.
        const unread_count = m.sender_id === me ? 0 : seeing ? conv.unread_count : conv.unread_count + 1;
        patch.conversations = { ...this.state.conversations, [conv.id]: { ...conv, last_message: m, unread_count } };
      } else if (conv.last_message?.id === m.id && conv.last_message !== m) {
        patch.conversations = { ...this.state.conversations, [conv.id]: { ...conv, last_message: m } };
      }
    }
    this.update(patch);
    if (!conv) void this.fetchConversation(m.conversation_id);
    else if (this.state.activeId === m.conversation_id) this.markRead(m.conversation_id);
  }

  private applyAck(clientMsgId: string, messageId: MessageId, conversationId: ConversationId): void {
    const out = this.state.outbox[clientMsgId];
    this.clearAckTimer(clientMsgId);
    if (!out) return;
    // Usually the `message` frame follows at once; until then show it as sent.
    const m: Message = {
      id: messageId,
      conversation_id: conversationId,
      sender_id: this.state.me.id,
      body: out.body,
      client_msg_id: clientMsgId,
      created_at: out.created_at,
    };
    this.applyMessage(m, false);
  }

  private applyTyping(conversationId: ConversationId, userId: UserId): void {
    if (userId === this.state.me.id) return;
    const until = this.now() + TYPING_SHOW_MS;
    const here = this.state.typing[conversationId] ?? {};
    this.update({ typing: { ...this.state.typing, [conversationId]: { ...here, [userId]: until } } });
    setTimeout(() => {
      const cur = this.state.typing[conversationId];
      if (!cur || cur[userId] !== until) return;
      const { [userId]: _gone, ...rest } = cur;
      this.update({ typing: { ...this.state.typing, [conversationId]: rest } });
    }, TYPING_SHOW_MS);
  }

  private applyRead(conversationId: ConversationId, userId: UserId, messageId: MessageId): void {
    const conv = this.state.conversations[conversationId];
    if (!conv) return;
    let changed = false;
    const members = conv.members.map((mem) => {
      if (mem.user.id !== userId) return mem;
      if (mem.last_read_id && compareIds(mem.last_read_id, messageId) >= 0) return mem;
      changed = true;
      return { ...mem, last_read_id: messageId };
    });
    if (changed) this.patchConversation(conversationId, { members });
  }

  private patchConversation(id: ConversationId, patch: Partial<Conversation>): void {
    const conv = this.state.conversations[id];
    if (!conv) return;
    this.update({ conversations: { ...this.state.conversations, [id]: { ...conv, ...patch } } });
  }

  private removeConversation(id: ConversationId): void {
    const { [id]: _c, ...conversations } = this.state.conversations;
    const { [id]: _m, ...messages } = this.state.messages;
    this.update({ conversations, messages, activeId: this.state.activeId === id ? null : this.state.activeId });
  }
}
