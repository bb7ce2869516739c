import { useAuth } from "./auth/AuthContext";
import { AuthScreen } from "./components/AuthScreen";
import { ChatApp } from "./components/ChatApp";

export function App() {
  const { state } = useAuth();
  switch (state.status) {
    case "loading":
      return <Splash text="Loading…" />;
    case "unreachable":
      return <Splash text="Cannot reach the server. Retrying…" />;
    case "anonymous":
      return <AuthScreen />;
    case "authenticated":
      return <ChatApp key={state.user.id} me={state.user} />;
  }
}

function Splash({ text }: { text: string }) {
  return (
    <div className="splash" role="status" aria-live="polite">
      {text}
    </div>
  );
}
