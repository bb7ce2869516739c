import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { AuthProvider } from "./auth/AuthContext";
import { Session } from "./auth/session";
import "./styles.css";

// One session per tab, outside React, so re-mounts never trigger a second refresh.
const session = new Session();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <AuthProvider session={session}>
      <App />
    </AuthProvider>
  </StrictMode>,
);
