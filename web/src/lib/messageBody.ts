/**
 * How long a message body is, counted as the server counts it: MAX_BODY_CHARS is a
 * number of Rust `char`s, that is Unicode code points. JavaScript's `length` counts
 * UTF-16 units, in which an emoji or any other astral character is two, so a body of
 * emoji would be refused here at half the length the server accepts.
 */
import { MAX_BODY_CHARS } from "../protocol";

export function bodyLength(body: string): number {
  // A string's iterator yields code points, so this counts them.
  return [...body].length;
}

export function isBodyTooLong(body: string): boolean {
  return bodyLength(body) > MAX_BODY_CHARS;
}
