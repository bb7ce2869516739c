/**
 * The two ways an API call fails: the server answered with an error (`ApiError`,
 * carrying its stable `ErrorCode` and the HTTP status), or it could not be reached
 * at all (`NetworkError`). Code that reacts to a failure switches on `code`, which
 * the compiler checks against the server's list in protocol.ts.
 */
import type { ErrorBody, ErrorCode } from "../protocol";

/**
 * Every code this build knows. A `Record` over the union, so a code added to the
 * protocol fails the type check here until it is listed.
 */
const KNOWN_CODES: Record<ErrorCode, true> = {
  invalid_input: true,
  invalid_username: true,
  invalid_password: true,
  empty_body: true,
  body_too_long: true,
  not_a_member: true,
  not_a_group: true,
  not_author: true,
  message_deleted: true,
  invalid_reply: true,
  invalid_emoji: true,
  too_many_reactions: true,
  invalid_query: true,
  invalid_frame: true,
  malformed_json: true,
  already_authenticated: true,
  unauthenticated: true,
  invalid_credentials: true,
  invalid_refresh_token: true,
  csrf_header_missing: true,
  not_admin: true,
  not_found: true,
  method_not_allowed: true,
  username_taken: true,
  last_admin: true,
  last_member: true,
  send_in_progress: true,
  sync_in_progress: true,
  too_large: true,
  request_timeout: true,
  rate_limited: true,
  too_many_attempts: true,
  unavailable: true,
  overloaded: true,
  internal: true,
  unknown: true,
};

/** A code off the wire; `unknown` for one a newer server sent, as the server reads it. */
export function parseErrorCode(raw: unknown): ErrorCode {
  return typeof raw === "string" && Object.hasOwn(KNOWN_CODES, raw) ? (raw as ErrorCode) : "unknown";
}

/** What to assume when an error answer has no body of ours (a proxy's error page). */
export function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 401:
      return "unauthenticated";
    case 404:
      return "not_found";
    case 408:
      return "request_timeout";
    case 413:
      return "too_large";
    case 429:
      return "rate_limited";
    case 500:
      return "internal";
    default:
      // A gateway between us and the server (502, 503, 504) means it is not reachable.
      return status > 500 ? "unavailable" : "unknown";
  }
}

/** An HTTP error from the API, carrying the server's stable `code`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** Reads the server's `ErrorBody` from a non-2xx response. */
  static async from(res: Response): Promise<ApiError> {
    let code = codeForStatus(res.status);
    let message = res.statusText || `Request failed (${res.status})`;
    try {
      const body = (await res.json()) as Partial<ErrorBody>;
      if (body.error) {
        code = parseErrorCode(body.error.code);
        message = body.error.message;
      }
    } catch {
      // Not JSON (a proxy error page, say): keep the status text.
    }
    return new ApiError(res.status, code, message);
  }
}

/** The server could not be reached at all (offline, restarting). */
export class NetworkError extends Error {
  constructor(cause: unknown) {
    super("Cannot reach the server. Check your connection and try again.");
    this.name = "NetworkError";
    this.cause = cause;
  }
}
