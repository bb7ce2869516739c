/**
 * Pending timeouts by key, for the effects layer: starting one for a key replaces the
 * one before, and all of them go at once on disconnect or dispose, so no timer of a
 * closed chat fires into it.
 */
export class Timeouts<Key> {
  private readonly pending = new Map<Key, ReturnType<typeof setTimeout>>();

  start(key: Key, delayMs: number, fire: () => void): void {
    this.cancel(key);
    this.pending.set(
      key,
      setTimeout(() => {
        this.pending.delete(key);
        fire();
      }, delayMs),
    );
  }

  cancel(key: Key): void {
    clearTimeout(this.pending.get(key));
    this.pending.delete(key);
  }

  cancelAll(): void {
    this.pending.forEach((t) => clearTimeout(t));
    this.pending.clear();
  }
}
