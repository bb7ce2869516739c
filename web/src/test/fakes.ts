/** Test doubles for the browser WebSocket and the store's two ports. */
import type {
  ClientFrame,
  Conversation,
  ConversationId,
  HistoryPage,
  Me,
  Message,
  MessageId,
  SearchPage,
  SendMessage,
  ServerFrame,
  UpdateConversation,
  UpdateMe,
  User,
  UserId,
} from "../protocol";
import type { ChatApi, HistoryQuery, SearchQuery } from "../api/client";
import { ApiError } from "../api/errors";
import type { ChatTransport } from "../store/chatStore";
import type { ConnectionStatus } from "../realtime/socket";

export class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static instances: FakeWebSocket[] = [];
  static reset() {
    FakeWebSocket.instances = [];
  }
  static get last(): FakeWebSocket {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }

  readyState = FakeWebSocket.CONNECTING;
  sent: ClientFrame[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;

  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
  }

  send(data: string) {
    this.sent.push(JSON.parse(data) as ClientFrame);
  }

  close(code = 1000, reason = "") {
    if (this.readyState === FakeWebSocket.CLOSED) return;
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason });
  }

  // ---- driven by the test ----
  open() {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.();
  }
  receive(frame: ServerFrame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  serverClose(code: number) {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason: "" });
  }
}

export class FakeTransport implements ChatTransport {
  isReady = true;
  status: ConnectionStatus = "online";
  sent: ClientFrame[] = [];
  private frames = new Set<(f: ServerFrame) => void>();
  private readies = new Set<(u: User) => void>();
  private statuses = new Set<(s: ConnectionStatus) => void>();

  send(frame: ClientFrame): boolean {
    if (!this.isReady) return false;
    this.sent.push(frame);
    return true;
  }
  onFrame(fn: (f: ServerFrame) => void) {
    this.frames.add(fn);
    return () => this.frames.delete(fn);
  }
  onReady(fn: (u: User) => void) {
    this.readies.add(fn);
    return () => this.readies.delete(fn);
  }
  onStatus(fn: (s: ConnectionStatus) => void) {
    this.statuses.add(fn);
    return () => this.statuses.delete(fn);
  }

  emit(frame: ServerFrame) {
    this.frames.forEach((fn) => fn(frame));
  }
  goOffline() {
    this.isReady = false;
    this.status = "reconnecting";
    this.statuses.forEach((fn) => fn("reconnecting"));
  }
  goReady(user: User) {
    this.isReady = true;
    this.status = "online";
    this.statuses.forEach((fn) => fn("online"));
    this.readies.forEach((fn) => fn(user));
  }
  ofType<T extends ClientFrame["type"]>(type: T): Extract<ClientFrame, { type: T }>[] {
    return this.sent.filter((f): f is Extract<ClientFrame, { type: T }> => f.type === type);
  }
}

type Endpoint = keyof ChatApi;

/**
 * An in-memory ChatApi: the conversations it knows, history pages from a function,
 * and a record of every call (endpoint and arguments) for the tests to check.
 */
const FAKE_ME = { id: "1", username: "alice", display_name: "Alice" } as unknown as User;

export class FakeApi implements ChatApi {
  calls: Array<{ endpoint: Endpoint; args: unknown[] }> = [];
  readonly conversations = new Map<ConversationId, Conversation>();
  users: User[] = [];
  /** Set to make `removeMember` and `updateConversation` refuse, as the server would. */
  refusal: ApiError | null = null;
  /** What `getMessage` finds, by id. */
  readonly messages = new Map<MessageId, Message>();
  /** Answers `searchMessages`; by default nothing matches. */
  search: (query: SearchQuery) => SearchPage | Promise<SearchPage> = () => ({ results: [], next_before: null });

  constructor(
    conversations: Conversation[] = [],
    /** Answers `history`; by default there is none. */
    private readonly pages: (id: ConversationId, query: HistoryQuery) => HistoryPage = () => ({
      messages: [],
      has_more: false,
    }),
  ) {
    for (const c of conversations) this.conversations.set(c.id, c);
  }

  /** The calls made to one endpoint, by their arguments. */
  callsTo<E extends Endpoint>(endpoint: E): Parameters<ChatApi[E]>[] {
    return this.calls.filter((c) => c.endpoint === endpoint).map((c) => c.args as Parameters<ChatApi[E]>);
  }

  private record(endpoint: Endpoint, ...args: unknown[]): void {
    this.calls.push({ endpoint, args });
  }

  private known(id: ConversationId): Promise<Conversation> {
    const c = this.conversations.get(id);
    return c ? Promise.resolve(c) : Promise.reject(new ApiError(404, "not_found", `no conversation ${id}`));
  }

  /** What `me` answers: my choice about the dataset, as the server keeps it. */
  consent: { allowed: boolean; at: string | null } = { allowed: false, at: null };

  me(): Promise<Me> {
    this.record("me");
    return Promise.resolve(this.meNow());
  }
  updateMe(change: UpdateMe): Promise<Me> {
    this.record("updateMe", change);
    if (this.refusal) return Promise.reject(this.refusal);
    this.consent = { allowed: change.dataset_consent, at: new Date(Date.now()).toISOString() };
    return Promise.resolve(this.meNow());
  }
  private meNow(): Me {
    return { ...FAKE_ME, dataset_consent: this.consent.allowed, dataset_consent_at: this.consent.at };
  }
  searchUsers(query: string): Promise<User[]> {
    this.record("searchUsers", query);
    return Promise.resolve(this.users.filter((u) => u.username.startsWith(query)));
  }
  listConversations(): Promise<Conversation[]> {
    this.record("listConversations");
    return Promise.resolve([...this.conversations.values()]);
  }
  getConversation(id: ConversationId): Promise<Conversation> {
    this.record("getConversation", id);
    return this.known(id);
  }
  createDirect(userId: UserId): Promise<Conversation> {
    this.record("createDirect", userId);
    return Promise.reject(new Error("FakeApi.createDirect: not faked"));
  }
  createGroup(title: string, memberIds: UserId[]): Promise<Conversation> {
    this.record("createGroup", title, memberIds);
    return Promise.reject(new Error("FakeApi.createGroup: not faked"));
  }
  addMembers(id: ConversationId, userIds: UserId[]): Promise<Conversation> {
    this.record("addMembers", id, userIds);
    return this.known(id);
  }
  removeMember(id: ConversationId, userId: UserId): Promise<void> {
    this.record("removeMember", id, userId);
    return this.refusal ? Promise.reject(this.refusal) : Promise.resolve();
  }
  updateConversation(id: ConversationId, change: UpdateConversation): Promise<Conversation> {
    this.record("updateConversation", id, change);
    return this.refusal ? Promise.reject(this.refusal) : this.known(id);
  }
  history(id: ConversationId, query: HistoryQuery): Promise<HistoryPage> {
    this.record("history", id, query);
    return Promise.resolve(this.pages(id, query));
  }
  getMessage(id: ConversationId, messageId: MessageId): Promise<Message> {
    this.record("getMessage", id, messageId);
    const m = this.messages.get(messageId);
    return m ? Promise.resolve(m) : Promise.reject(new ApiError(404, "not_found", `no message ${messageId}`));
  }
  searchMessages(query: SearchQuery): Promise<SearchPage> {
    this.record("searchMessages", query);
    return Promise.resolve(this.search(query));
  }
  sendMessage(id: ConversationId, req: SendMessage): Promise<Message> {
    this.record("sendMessage", id, req);
    return Promise.reject(new Error("FakeApi.sendMessage: the store sends over the WebSocket"));
  }
}

/** The URL a fetch was called with, whichever form it took. */
export function requestUrl(input: RequestInfo | URL): string {
  if (typeof input === "string") return input;
  return input instanceof URL ? input.href : input.url;
}

/** A `fetch` that answers with `respond` and records every call. */
export function fakeFetch(respond: (url: string, init: RequestInit) => Response | Promise<Response>) {
  const calls: Array<{ url: string; init: RequestInit }> = [];
  const fetch: typeof globalThis.fetch = (input, init = {}) => {
    const url = requestUrl(input);
    calls.push({ url, init });
    return Promise.resolve(respond(url, init));
  };
  return { fetch, calls };
}

/** A Response-like object good enough for Session. */
export function jsonResponse(status: number, body?: unknown): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}
