import type { ErrorBody } from "../protocol";

/** An HTTP error from the API, carrying the server's stable `code`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }

  static async from(res: Response): Promise<ApiError> {
    let code = `http_${res.status}`;
    let message = res.statusText || `Request failed (${res.status})`;
    try {
      const body = (await res.json()) as Partial<ErrorBody>;
      if (body.error) {
        code = body.error.code;
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
