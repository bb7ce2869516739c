/**
 * Full-text search over my conversations (GET /search): results newest first, the
 * matched terms marked (as text nodes in <mark>, never HTML), more by `next_before`.
 * A result opens its conversation at that message. A bad query's explanation from
 * the server shows under the box.
 */
import { useRef, useState } from "react";
import type { ConversationId, MessageId, SearchHit } from "../protocol";
import { MAX_SEARCH_CHARS } from "../protocol";
import { openConversationLink } from "../navigation";
import { useChat, useChatStore } from "../store/hooks";
import { conversationTitle, userName } from "../store/selectors";
import { formatListTime } from "../lib/time";

interface Results {
  query: string;
  hits: SearchHit[];
  nextBefore: MessageId | null;
}

export const SEARCH_PAGE = 20;

export function SearchPanel({ onClose }: { onClose: () => void }) {
  const store = useChatStore();
  const me = useChat((s) => s.me);
  const conversations = useChat((s) => s.conversations.byId);
  const [text, setText] = useState("");
  const [results, setResults] = useState<Results | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  /** Only the latest request may land: an older answer arriving late is dropped. */
  const latest = useRef(0);

  async function run(query: string, before: MessageId | null) {
    const ticket = ++latest.current;
    setLoading(true);
    setError(null);
    try {
      const page = await store.searchMessages(query, before ?? undefined, SEARCH_PAGE);
      if (ticket !== latest.current) return;
      setResults((prev) => ({
        query,
        hits: before && prev ? [...prev.hits, ...page.results] : page.results,
        nextBefore: page.next_before,
      }));
    } catch (e) {
      if (ticket !== latest.current) return;
      setError(e instanceof Error ? e.message : "Search failed.");
      if (!before) setResults(null);
    } finally {
      if (ticket === latest.current) setLoading(false);
    }
  }

  function open(conversationId: ConversationId, messageId: MessageId) {
    void store.openAtMessage(conversationId, messageId);
    openConversationLink(conversationId);
  }

  const q = text.trim();
  return (
    <section className="search-panel" aria-label="Message search">
      <form
        className="search"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          if (q) void run(q, null);
        }}
      >
        <input
          type="search"
          placeholder="Search messages"
          aria-label="Search messages"
          value={text}
          maxLength={MAX_SEARCH_CHARS}
          autoFocus
          aria-invalid={!!error}
          aria-describedby={error ? "search-error" : undefined}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => e.key === "Escape" && onClose()}
        />
        <button type="submit" className="ghost" disabled={!q || loading}>
          Search
        </button>
        <button type="button" className="icon-button" aria-label="Close search" onClick={onClose}>
          ×
        </button>
      </form>
      <div className="search-results">
        {error && (
          <p className="field-error pad" id="search-error" role="alert">
            {error}
          </p>
        )}
        {loading && !results && <p className="muted pad">Searching…</p>}
        {results && results.hits.length === 0 && <p className="muted pad">No messages match “{results.query}”.</p>}
        {results && results.hits.length > 0 && (
          <ul className="list" aria-label="Search results">
            {results.hits.map((hit) => {
              const m = hit.message;
              const conv = conversations[m.conversation_id];
              return (
                <li key={m.id}>
                  <button type="button" className="row search-hit" onClick={() => open(m.conversation_id, m.id)}>
                    <span className="row-main">
                      <span className="row-top">
                        <span className="row-title">
                          {conv ? conversationTitle(conv, me.id) : "Conversation"}
                          {conv?.kind === "group" && <span className="muted"> · {m.sender_id === me.id ? "You" : userName(conv, m.sender_id)}</span>}
                        </span>
                        <time className="row-time muted">{formatListTime(m.created_at)}</time>
                      </span>
                      <span className="hit-text">
                        {hit.marked.map((piece, i) => (piece.matched ? <mark key={i}>{piece.text}</mark> : <span key={i}>{piece.text}</span>))}
                      </span>
                    </span>
                  </button>
                </li>
              );
            })}
          </ul>
        )}
        {results?.nextBefore && (
          <p className="pad">
            <button type="button" className="ghost" disabled={loading} onClick={() => void run(results.query, results.nextBefore)}>
              {loading ? "Loading…" : "Load more"}
            </button>
          </p>
        )}
      </div>
    </section>
  );
}
