// @ts-check
/**
 * ESLint for the web client: the recommended JavaScript rules, typescript-eslint's
 * type-aware recommended rules (they see through promises and `any`, which the plain
 * ones cannot), and React's rules of hooks with the React Compiler's checks.
 * `npm run lint` runs it together with the import-cycle check (madge).
 */
import js from "@eslint/js";
import { defineConfig, globalIgnores } from "eslint/config";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

export default defineConfig([
  globalIgnores(["dist/", "screenshots/", "test-results/"]),
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
  },
  {
    files: ["src/**/*.{ts,tsx}"],
    extends: [reactHooks.configs.flat.recommended],
    languageOptions: { globals: globals.browser },
  },
  {
    // The browser tests, the build config and this file run in Node.
    files: ["tests/**/*.mjs", "vite.config.ts", "eslint.config.js"],
    languageOptions: { globals: globals.node },
  },
]);
