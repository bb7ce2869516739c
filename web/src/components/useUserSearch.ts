/** Debounced people search against GET /users?q=. */
import { useEffect, useState } from "react";
import type { User } from "../protocol";
import { useChatStore } from "../store/hooks";

/** The last search that finished: what it asked, and what came back. */
interface Answer {
  query: string;
  results: User[];
  error: string | null;
}

export function useUserSearch(query: string, delayMs = 200) {
  const store = useChatStore();
  const [answer, setAnswer] = useState<Answer | null>(null);
  const q = query.trim().toLowerCase();

  // A cleared search forgets its results, so the next one starts from "Searching…".
  if (!q && answer) setAnswer(null);

  useEffect(() => {
    if (!q) return;
    let cancelled = false;
    const t = setTimeout(() => {
      store
        .searchUsers(q)
        .then((results) => !cancelled && setAnswer({ query: q, results, error: null }))
        .catch(
          (e: unknown) =>
            // A failed search keeps what the one before it found.
            !cancelled &&
            setAnswer((prev) => ({
              query: q,
              results: prev?.results ?? [],
              error: e instanceof Error ? e.message : "Search failed",
            })),
        );
    }, delayMs);
    return () => {
      cancelled = true;
      clearTimeout(t);
    };
  }, [q, store, delayMs]);

  // While a new query is on its way the previous results stay, so the list does not flicker.
  const current = answer?.query === q;
  return {
    results: q ? (answer?.results ?? []) : [],
    loading: q.length > 0 && !current,
    error: current ? answer.error : null,
    active: q.length > 0,
  };
}
