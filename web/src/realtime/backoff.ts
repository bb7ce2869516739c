/**
 * Reconnect delays: exponential with "equal jitter" — half the delay is fixed, half
 * random — so a server restart is not met by every client at the same instant, yet no
 * client hammers it with near-zero delays.
 */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 15_000 };

export function backoffDelayMs(attempt: number, random: () => number = Math.random, opts = DEFAULT_BACKOFF): number {
  const ceiling = Math.min(opts.capMs, opts.baseMs * 2 ** Math.max(0, attempt));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
