/**
 * The HTTP API the chat uses once logged in: one function per endpoint, typed with
 * the request and response types of protocol.ts. Requests go through the session's
 * `fetch`, which adds the access token and refreshes it once after a 401; failures
 * reject with `ApiError` (carrying the server's `ErrorCode`) or `NetworkError`.
 */
import type {
  AddMembers,
  Conversation,
  ConversationId,
  CreateConversation,
  HistoryPage,
  Me,
  Message,
  MessageId,
  SearchPage,
  SendMessage,
  UpdateConversation,
  UpdateMe,
  User,
  UserId,
} from "../protocol";
import { getJson, patchJson, postJson, sendForNothing, type ApiFetch } from "./http";

/** Which page of history: older than `before`, newer than `after`, at most `limit`. */
export interface HistoryQuery {
  before?: MessageId;
  after?: MessageId;
  limit?: number;
}

/** A full-text search: its words, optionally one conversation, the page before `before`. */
export interface SearchQuery {
  q: string;
  conversationId?: ConversationId;
  before?: MessageId;
  limit?: number;
}

export interface ChatApi {
  me(): Promise<Me>;
  /** Records my choice about the training dataset. */
  updateMe(change: UpdateMe): Promise<Me>;
  /** People whose username or display name starts with `query`. */
  searchUsers(query: string): Promise<User[]>;
  listConversations(): Promise<Conversation[]>;
  getConversation(id: ConversationId): Promise<Conversation>;
  /** The direct conversation with `userId`; asking twice returns the same one. */
  createDirect(userId: UserId): Promise<Conversation>;
  createGroup(title: string, memberIds: UserId[]): Promise<Conversation>;
  addMembers(id: ConversationId, userIds: UserId[]): Promise<Conversation>;
  /** Removes a member (admins), or leaves the group (with one's own id). */
  removeMember(id: ConversationId, userId: UserId): Promise<void>;
  /** Renames a group and makes or unmakes admins (admins only); all or nothing. */
  updateConversation(id: ConversationId, change: UpdateConversation): Promise<Conversation>;
  /** A page of history, newest first. */
  history(id: ConversationId, query: HistoryQuery): Promise<HistoryPage>;
  /** One message in its current state (to quote one not loaded). */
  getMessage(id: ConversationId, messageId: MessageId): Promise<Message>;
  /** Sends over HTTP (the WebSocket is the usual way); idempotent by `client_msg_id`. */
  sendMessage(id: ConversationId, req: SendMessage): Promise<Message>;
  /** Messages matching `q` in my conversations, newest first; `invalid_query` (400) for a bad one. */
  searchMessages(query: SearchQuery): Promise<SearchPage>;
}

export function createChatApi(fetch: ApiFetch): ChatApi {
  return {
    me: () => getJson<Me>(fetch, "/me"),
    updateMe: (change) => patchJson<UpdateMe, Me>(fetch, "/me", change),
    searchUsers: (query) => getJson<User[]>(fetch, `/users?${new URLSearchParams({ q: query })}`),
    listConversations: () => getJson<Conversation[]>(fetch, "/conversations"),
    getConversation: (id) => getJson<Conversation>(fetch, `/conversations/${id}`),
    createDirect: (userId) =>
      postJson<CreateConversation, Conversation>(fetch, "/conversations", { kind: "direct", user_id: userId }),
    createGroup: (title, memberIds) =>
      postJson<CreateConversation, Conversation>(fetch, "/conversations", {
        kind: "group",
        title,
        member_ids: memberIds,
      }),
    addMembers: (id, userIds) =>
      postJson<AddMembers, Conversation>(fetch, `/conversations/${id}/members`, { user_ids: userIds }),
    removeMember: (id, userId) => sendForNothing(fetch, `/conversations/${id}/members/${userId}`, "DELETE"),
    updateConversation: (id, change) =>
      patchJson<UpdateConversation, Conversation>(fetch, `/conversations/${id}`, change),
    history: (id, query) => getJson<HistoryPage>(fetch, `/conversations/${id}/messages?${historyParams(query)}`),
    getMessage: (id, messageId) => getJson<Message>(fetch, `/conversations/${id}/messages/${messageId}`),
    sendMessage: (id, req) => postJson<SendMessage, Message>(fetch, `/conversations/${id}/messages`, req),
    searchMessages: (query) => getJson<SearchPage>(fetch, `/search?${searchParams(query)}`),
  };
}

function historyParams({ before, after, limit }: HistoryQuery): URLSearchParams {
  const params = new URLSearchParams();
  if (before) params.set("before", before);
  if (after) params.set("after", after);
  if (limit !== undefined) params.set("limit", String(limit));
  return params;
}

function searchParams({ q, conversationId, before, limit }: SearchQuery): URLSearchParams {
  const params = new URLSearchParams({ q });
  if (conversationId) params.set("conversation_id", conversationId);
  if (before) params.set("before", before);
  if (limit !== undefined) params.set("limit", String(limit));
  return params;
}
