/** The visible connection state. Short blips (a token-expiry reconnect) stay hidden. */
import { useEffect, useState } from "react";
import type { ConnectionStatus } from "../realtime/socket";
import { useChat } from "../store/hooks";

const SHOW_AFTER_MS = 700;

function describe(connection: Exclude<ConnectionStatus, "online">): string {
  switch (connection) {
    case "offline":
      return "You are offline. Messages will be sent when you reconnect.";
    case "connecting":
      return "Connecting…";
    case "reconnecting":
      return "Reconnecting…";
  }
}

export function ConnectionBanner() {
  const connection = useChat((s) => s.connection);
  const [shown, setShown] = useState<string | null>(null);
  const [lastConnection, setLastConnection] = useState(connection);

  // Back online: hide at once, during this render, so a later outage waits its own delay.
  if (connection !== lastConnection) {
    setLastConnection(connection);
    if (connection === "online") setShown(null);
  }

  useEffect(() => {
    if (connection === "online") return;
    const t = setTimeout(() => setShown(describe(connection)), SHOW_AFTER_MS);
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
