import { describe, expect, it } from "vitest";
import { conversationId, messageId, userId } from "../lib/ids";
import { fakeFetch, jsonResponse } from "../test/fakes";
import { createAuthApi } from "./auth";
import { createChatApi } from "./client";
import { ApiError, NetworkError, parseErrorCode } from "./errors";
import { apiFetch } from "./http";

/** An API client whose every request is answered `body` with `status`, and recorded. */
function recordingApi(body: unknown = {}, status = 200) {
  const { fetch, calls } = fakeFetch(() => (status === 204 ? new Response(null, { status }) : jsonResponse(status, body)));
  const requests = () =>
    calls.map(({ url, init }) => ({
      url,
      method: init.method,
      body: typeof init.body === "string" ? (JSON.parse(init.body) as unknown) : undefined,
      headers: new Headers(init.headers),
    }));
  return { api: createChatApi(apiFetch(fetch)), requests };
}

const conv = conversationId("100");
const bobId = userId("2");

describe("the API client", () => {
  it("calls each endpoint with its method, path and body", async () => {
    const { api, requests } = recordingApi();
    await api.me();
    await api.searchUsers("al ice");
    await api.listConversations();
    await api.getConversation(conv);
    await api.createDirect(bobId);
    await api.createGroup("Trip", [bobId]);
    await api.addMembers(conv, [bobId]);
    await api.updateConversation(conv, { title: "Trip 2", add_admins: [bobId] });
    await api.history(conv, { before: messageId("20"), limit: 50 });
    await api.history(conv, { after: messageId("7") });
    await api.sendMessage(conv, { client_msg_id: "c1", body: "hi" });
    await api.getMessage(conv, messageId("12345678901234567890"));
    await api.searchMessages({ q: "café & tea", conversationId: conv, before: messageId("99"), limit: 20 });
    expect(requests().map(({ method, url, body }) => [method, url, body])).toEqual([
      ["GET", "/api/v1/me", undefined],
      ["GET", "/api/v1/users?q=al+ice", undefined],
      ["GET", "/api/v1/conversations", undefined],
      ["GET", "/api/v1/conversations/100", undefined],
      ["POST", "/api/v1/conversations", { kind: "direct", user_id: "2" }],
      ["POST", "/api/v1/conversations", { kind: "group", title: "Trip", member_ids: ["2"] }],
      ["POST", "/api/v1/conversations/100/members", { user_ids: ["2"] }],
      ["PATCH", "/api/v1/conversations/100", { title: "Trip 2", add_admins: ["2"] }],
      ["GET", "/api/v1/conversations/100/messages?before=20&limit=50", undefined],
      ["GET", "/api/v1/conversations/100/messages?after=7", undefined],
      ["POST", "/api/v1/conversations/100/messages", { client_msg_id: "c1", body: "hi" }],
      ["GET", "/api/v1/conversations/100/messages/12345678901234567890", undefined],
      ["GET", "/api/v1/search?q=caf%C3%A9+%26+tea&conversation_id=100&before=99&limit=20", undefined],
    ]);
    const post = requests()[4];
    expect(post.headers.get("content-type")).toBe("application/json");
  });

  it("removes a member with DELETE and reads no body", async () => {
    const { api, requests } = recordingApi(undefined, 204);
    await expect(api.removeMember(conv, bobId)).resolves.toBeUndefined();
    expect(requests()[0]).toMatchObject({ method: "DELETE", url: "/api/v1/conversations/100/members/2" });
  });

  it("sends the CSRF header on refresh and logout, and the token on logout", async () => {
    const { fetch, calls } = fakeFetch(() => jsonResponse(200, { access_token: "t", expires_in: 900 }));
    const auth = createAuthApi(apiFetch(fetch));
    await auth.refresh();
    await auth.logout("t0");
    const headers = calls.map(({ init }) => new Headers(init.headers));
    expect(headers.map((h) => h.get("x-chat-csrf"))).toEqual(["1", "1"]);
    expect(headers[1].get("authorization")).toBe("Bearer t0");
  });
});

describe("API errors", () => {
  it("carry the server's code and the HTTP status", async () => {
    const { api } = recordingApi({ error: { code: "not_found", message: "no such conversation" } }, 404);
    const err = await api.getConversation(conv).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 404, code: "not_found", message: "no such conversation" });
  });

  it("carry a bad search query's explanation, to show as it is", async () => {
    const { api } = recordingApi({ error: { code: "invalid_query", message: "Unbalanced quote in the query." } }, 400);
    await expect(api.searchMessages({ q: '"tea' })).rejects.toMatchObject({ status: 400, code: "invalid_query", message: "Unbalanced quote in the query." });
  });

  it("read a code from a newer server as unknown", () => {
    expect(parseErrorCode("rate_limited")).toBe("rate_limited");
    expect(parseErrorCode("quota_exceeded")).toBe("unknown");
    expect(parseErrorCode("toString")).toBe("unknown"); // not an inherited property either
    expect(parseErrorCode(42)).toBe("unknown");
  });

  it("fall back to a code for the status when the body is not ours", async () => {
    const { fetch } = fakeFetch(() => new Response("<html>Bad Gateway</html>", { status: 502, statusText: "Bad Gateway" }));
    const api = createChatApi(apiFetch(fetch));
    await expect(api.me()).rejects.toMatchObject({ status: 502, code: "unavailable", message: "Bad Gateway" });
  });

  it("are a NetworkError when the server cannot be reached", async () => {
    const { fetch } = fakeFetch(() => Promise.reject(new TypeError("Failed to fetch")));
    const api = createChatApi(apiFetch(fetch));
    await expect(api.me()).rejects.toBeInstanceOf(NetworkError);
  });
});
