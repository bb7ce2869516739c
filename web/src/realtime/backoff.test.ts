import { describe, expect, it } from "vitest";
import { backoffDelayMs } from "./backoff";

describe("backoffDelayMs", () => {
  it("doubles with each attempt up to the cap", () => {
    const top = (n: number) => backoffDelayMs(n, () => 1);
    expect([0, 1, 2, 3].map(top)).toEqual([500, 1000, 2000, 4000]);
    expect(top(20)).toBe(15_000);
  });

  it("keeps jitter within the upper half of the window", () => {
    for (let i = 0; i < 200; i++) {
      const d = backoffDelayMs(3, Math.random);
      expect(d).toBeGreaterThanOrEqual(2000);
      expect(d).toBeLessThanOrEqual(4000);
    }
    expect(backoffDelayMs(3, () => 0)).toBe(2000);
  });
});
