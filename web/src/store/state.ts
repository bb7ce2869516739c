/**
 * The shape of the client's chat state: one field per slice, each owned by one
 * reducer in slices/. State objects are replaced, never mutated, and a reducer hands
 * back the very same object when an event does not concern it, so a component that
 * selects a slice re-renders only when that slice changed (store/hooks.tsx).
 */
import type { Conversation, ConversationId, Message, MessageId, User, UserId } from "../protocol";
import type { ConnectionStatus } from "../realtime/socket";
import type { MessageChange } from "./messageChanges";

export interface ConversationsState {
  byId: Record<ConversationId, Conversation>;
  /** The list has been fetched at least once (so "no conversations yet" is true). */
  loaded: boolean;
}

export interface ConversationMessages {
  /** In id order, which is send order within a conversation (DESIGN.md §3). */
  items: Message[];
  /** Older history remains on the server. */
  hasMore: boolean;
  /** The newest page has been fetched at least once. */
  loaded: boolean;
  loadingOlder: boolean;
  /**
   * Null while `items` reach the present. Opening the conversation at an old message
   * (a search result, a reply quote) loads a window around it instead: then this is
   * the newest message of that window, newer history remains to be loaded after it,
   * and live messages already held past it wait, unshown, until the gap is filled.
   */
  newerCursor: MessageId | null;
  loadingNewer: boolean;
  /** Changes to messages not held yet, applied when they load (messageChanges.ts). */
  held: MessageChange[];
  /**
   * Messages fetched one by one to quote them (a reply to one not loaded), by id;
   * null for one the server does not have (its quote says "original deleted").
   */
  quoted: Record<MessageId, Message | null>;
}

export type OutgoingStatus = "pending" | "failed";

/** A message of mine the server has not acknowledged yet. */
export interface OutgoingMessage {
  /** The idempotency key: kept across retries and reconnects, so it is stored once. */
  client_msg_id: string;
  conversation_id: ConversationId;
  body: string;
  /** The message this one answers, if any. */
  reply_to?: MessageId;
  created_at: string;
  status: OutgoingStatus;
  error?: string;
}

/** conversation → typing user → when the indicator expires (ms epoch). */
/** What a change of mine does to a message. */
export type ChangeOp = { kind: "edit"; body: string } | { kind: "delete" } | { kind: "react"; emoji: string; on: boolean };

/**
 * An edit, deletion or reaction of mine on its way. Shown over the message at once;
 * it stays, with the same client_msg_id across reconnects, until its own event comes
 * back (or, acknowledged, until a `sync` replay has brought the message's state).
 */
export interface OutgoingChange {
  client_msg_id: string;
  conversation_id: ConversationId;
  message_id: MessageId;
  op: ChangeOp;
  created_at: string;
  /**
   * `acked`: the server has it, its event is still to come. `replayed`: it was acked
   * before a `sync` started, so its event may come folded into the replay instead.
   */
  status: "pending" | "acked" | "replayed";
}

export type TypingState = Record<ConversationId, Record<UserId, number>>;

/**
 * Where the next `sync` replays from (DESIGN.md §6). `lastSeenId` advances only from
 * the live stream, `synced` and the conversation list; while a replay runs, what
 * arrives only raises `seenDuringReplay`, taken on at `synced`, because a connection
 * that drops mid-replay leaves the older part of the replay undelivered.
 */
export interface SyncCursor {
  lastSeenId: MessageId | null;
  replaying: boolean;
  seenDuringReplay: MessageId | null;
}

/** What the user is looking at. */
export interface ViewState {
  activeId: ConversationId | null;
  /** Whether the page is visible; read receipts are sent only when it is. */
  visible: boolean;
  /** A passing message for the user (a toast). */
  notice: string | null;
  /** A message to scroll to and highlight (a search result, a reply's original). */
  focus: { conversationId: ConversationId; messageId: MessageId } | null;
}

export interface ChatState {
  me: User;
  connection: ConnectionStatus;
  conversations: ConversationsState;
  messages: Record<ConversationId, ConversationMessages>;
  /** By client_msg_id. */
  outbox: Record<string, OutgoingMessage>;
  /** My edits, deletions and reactions not settled yet, by client_msg_id. */
  changes: Record<string, OutgoingChange>;
  presence: Record<UserId, boolean>;
  typing: TypingState;
  sync: SyncCursor;
  view: ViewState;
}

/**
 * What a few slices must know about the rest of the state: whose client this is and
 * whether a conversation is on screen (unread counts, own typing, own echoes).
 */
export interface Viewer {
  me: UserId;
  activeId: ConversationId | null;
  visible: boolean;
}

export function initialChatState(me: User, connection: ConnectionStatus): ChatState {
  return {
    me,
    connection,
    conversations: { byId: {}, loaded: false },
    messages: {},
    outbox: {},
    changes: {},
    presence: {},
    typing: {},
    sync: { lastSeenId: null, replaying: false, seenDuringReplay: null },
    view: { activeId: null, visible: true, notice: null, focus: null },
  };
}

export function viewerOf(state: ChatState): Viewer {
  return { me: state.me.id, activeId: state.view.activeId, visible: state.view.visible };
}

/** Whether the user is looking at the conversation right now. */
export function isOnScreen(viewer: Viewer, id: ConversationId): boolean {
  return viewer.visible && viewer.activeId === id;
}
