/** The visible connection state. Short blips (a token-expiry reconnect) stay hidden. */
import { useEffect, useState } from "react";
import { useChat } from "../store/hooks";

const SHOW_AFTER_MS = 700;

export function ConnectionBanner() {
  const connection = useChat((s) => s.connection);
  const [shown, setShown] = useState<string | null>(null);

  useEffect(() => {
    if (connection === "online") {
      setShown(null);
      return;
    }
    const text =
      connection === "offline" ? "You are offline. Messages will be sent when you reconnect." : connection === "connecting" ? "Connecting…" : "Reconnecting…";
    const t = setTimeout(() => setShown(text), SHOW_AFTER_MS);
    return () => clearTimeout(t);
  }, [connection]);

  return (
    <div className="connection" role="status" aria-live="polite" data-state={shown ? connection : "online"}>
      {shown && (
        <>
          <span className="spinner" aria-hidden="true" />
          {shown}
        </>
      )}
    </div>
  );
}
