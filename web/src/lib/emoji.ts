/**
 * The emoji the reaction picker offers: a curated list of common ones rather than a
 * package, since the server accepts any single emoji and a picker of all 3,700 would
 * outweigh the rest of the client. Each is one grapheme, as the server requires.
 */
export const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"] as const;

export const COMMON_EMOJI = [
  "👍", "👎", "❤️", "😂", "😮", "😢", "🙏", "🎉",
  "🔥", "👀", "✅", "❌", "💯", "👏", "🙌", "🤝",
  "😀", "😊", "😍", "🥰", "😎", "🤔", "😅", "🙃",
  "😴", "🤯", "😬", "🥳", "😇", "🤗", "😡", "💀",
  "👋", "💪", "🤞", "✌️", "👌", "🚀", "⭐", "☕",
] as const;
