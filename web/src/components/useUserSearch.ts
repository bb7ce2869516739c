/** Debounced people search against GET /users?q=. */
import { useEffect, useState } from "react";
import type { User } from "../protocol";
import { useChatStore } from "../store/hooks";

export function useUserSearch(query: string, delayMs = 200) {
  const store = useChatStore();
  const [results, setResults] = useState<User[]>([]);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const q = query.trim().toLowerCase();

  useEffect(() => {
    if (!q) {
      setResults([]);
      setLoading(false);
      setError(null);
      return;
    }
    let cancelled = false;
    setLoading(true);
    const t = setTimeout(() => {
      store
        .searchUsers(q)
        .then((users) => {
          if (cancelled) return;
          setResults(users);
          setError(null);
        })
        .catch((e: unknown) => !cancelled && setError(e instanceof Error ? e.message : "Search failed"))
        .finally(() => !cancelled && setLoading(false));
    }, delayMs);
    return () => {
      cancelled = true;
      clearTimeout(t);
    };
  }, [q, store, delayMs]);

  return { results, loading, error, active: q.length > 0 };
}
