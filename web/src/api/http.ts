/**
 * The plumbing the endpoint functions share: JSON in, JSON out, failures as
 * `ApiError` (the server said no) or `NetworkError` (it could not be reached).
 * Only src/api uses it; everyone else calls an endpoint function, whose signature
 * names the request and response types from protocol.ts.
 */
import { ApiError, NetworkError } from "./errors";

export const API_BASE = "/api/v1";

/**
 * Sends a request to a path under `API_BASE`. The plain one (`apiFetch`) serves the
 * auth endpoints; the session's adds the access token and refreshes it after a 401.
 */
export type ApiFetch = (path: string, init: RequestInit) => Promise<Response>;

/** `fetch` against the API, with the refresh cookie, and NetworkError when offline. */
export function apiFetch(fetchImpl: typeof fetch): ApiFetch {
  return async (path, init) => {
    try {
      return await fetchImpl(`${API_BASE}${path}`, { ...init, credentials: "same-origin" });
    } catch (e) {
      throw new NetworkError(e);
    }
  };
}

interface JsonRequest<Body> {
  method: "GET" | "POST" | "PATCH" | "DELETE";
  body?: Body;
  headers?: Record<string, string>;
}

async function send<Body>(fetch: ApiFetch, path: string, req: JsonRequest<Body>): Promise<Response> {
  const headers = new Headers(req.headers);
  if (req.body !== undefined) headers.set("content-type", "application/json");
  const res = await fetch(path, {
    method: req.method,
    headers,
    body: req.body === undefined ? undefined : JSON.stringify(req.body),
  });
  if (!res.ok) throw await ApiError.from(res);
  return res;
}

/** A GET answered with a JSON body. */
export async function getJson<Res>(fetch: ApiFetch, path: string): Promise<Res> {
  const res = await send(fetch, path, { method: "GET" });
  return (await res.json()) as Res;
}

/** A POST of a JSON body, answered with one. */
export async function postJson<Req, Res>(
  fetch: ApiFetch,
  path: string,
  body: Req,
  headers?: Record<string, string>,
): Promise<Res> {
  const res = await send(fetch, path, { method: "POST", body, headers });
  return (await res.json()) as Res;
}

/** A PATCH of a JSON body, answered with the changed resource. */
export async function patchJson<Req, Res>(fetch: ApiFetch, path: string, body: Req): Promise<Res> {
  const res = await send(fetch, path, { method: "PATCH", body });
  return (await res.json()) as Res;
}

/** A request whose answer has no body worth reading (204, or one we ignore). */
export async function sendForNothing(
  fetch: ApiFetch,
  path: string,
  method: "POST" | "DELETE",
  headers?: Record<string, string>,
): Promise<void> {
  await send(fetch, path, { method, headers });
}
