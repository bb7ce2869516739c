/**
 * A message body as text, with http(s) links as links and resolved `@mentions`
 * marked (strongly when they name the reader). Never HTML.
 */
import type { UserId } from "../protocol";
import { linkify } from "../lib/linkify";
import { splitMentions } from "../lib/mentions";

export interface MentionContext {
  /** The conversation's members by lowercase username. */
  usernames: ReadonlyMap<string, UserId>;
  /** Whom the server resolved the message to mention. */
  mentioned: readonly UserId[];
  me: UserId;
}

export function MessageText({ text, mentions }: { text: string; mentions?: MentionContext }) {
  return (
    <>
      {linkify(text).map((seg, i) =>
        seg.kind === "link" ? (
          <a key={i} href={seg.href} target="_blank" rel="noopener noreferrer nofollow">
            {seg.text}
          </a>
        ) : mentions ? (
          <span key={i}>
            {splitMentions(seg.text, mentions.usernames, mentions.mentioned).map((part, j) =>
              part.kind === "mention" ? (
                <span key={j} className="mention" data-me={part.userId === mentions.me}>
                  {part.text}
                </span>
              ) : (
                part.text
              ),
            )}
          </span>
        ) : (
          <span key={i}>{seg.text}</span>
        ),
      )}
    </>
  );
}
