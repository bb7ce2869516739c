import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// In development the API runs in a separate `chat serve`; CHAT_SERVER points at it.
const server = process.env.CHAT_SERVER ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": { target: server, ws: true },
    },
  },
  build: { outDir: "dist", emptyOutDir: true },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    setupFiles: ["src/test-setup.ts"],
  },
});
