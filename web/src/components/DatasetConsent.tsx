/**
 * The training-data choice in the sidebar: whether my messages may enter the dataset
 * the operator builds from conversations (README, "Training data"). Off until I
 * choose, unless the operator's default says otherwise; shown with what it means.
 */
import { useEffect, useState } from "react";
import type { Me } from "../protocol";
import { useChatStore } from "../store/hooks";

export function DatasetConsent() {
  const store = useChatStore();
  const [me, setMe] = useState<Me | null>(null);
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    let live = true;
    store
      .datasetConsent()
      .then((m) => live && setMe(m))
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [store]);

  if (!me) return null;

  async function choose(allowed: boolean) {
    setSaving(true);
    try {
      setMe(await store.setDatasetConsent(allowed));
    } catch {
      store.showNotice("Your choice about training data was not saved; try again.");
    } finally {
      setSaving(false);
    }
  }

  return (
    <details className="dataset-consent">
      <summary>Training data: {me.dataset_consent ? "my messages may be used" : "my messages are not used"}</summary>
      <p className="muted">
        The operator may build machine-learning training data from conversations. If you allow it, the messages you send
        from now on can be included, without your name or id and with e-mail addresses, phone numbers and similar details
        removed. Turning it off again also keeps your earlier messages out of every dataset built afterwards.
      </p>
      <label>
        <input
          type="checkbox"
          checked={me.dataset_consent}
          disabled={saving}
          onChange={(e) => void choose(e.target.checked)}
        />{" "}
        Allow my messages to be used as training data
      </label>
      <p className="muted small">
        {me.dataset_consent_at
          ? `You chose this on ${new Date(me.dataset_consent_at).toLocaleString()}.`
          : "You have not chosen yet: the server's default applies."}
      </p>
    </details>
  );
}
