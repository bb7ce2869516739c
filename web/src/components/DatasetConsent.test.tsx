import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { ApiError } from "../api/errors";
import { ChatStore } from "../store/chatStore";
import { ChatStoreContext } from "../store/hooks";
import { FakeApi } from "../test/fakes";
import { alice } from "../test/fixtures";
import { DatasetConsent } from "./DatasetConsent";

function setup() {
  const api = new FakeApi();
  const store = new ChatStore(alice, api);
  render(
    <ChatStoreContext.Provider value={store}>
      <DatasetConsent />
    </ChatStoreContext.Provider>,
  );
  return { api, store };
}

describe("DatasetConsent", () => {
  it("shows the server's answer, says what it means, and records a change", async () => {
    const { api } = setup();
    const box = await screen.findByRole("checkbox", { name: /allow my messages to be used as training data/i });
    expect(box).not.toBeChecked();
    expect(screen.getByText(/without your name or id/i)).toBeInTheDocument();
    expect(screen.getByText(/have not chosen yet/i)).toBeInTheDocument();
    await userEvent.click(box);
    expect(api.callsTo("updateMe")).toEqual([[{ dataset_consent: true }]]);
    expect(await screen.findByRole("checkbox", { checked: true })).toBeInTheDocument();
    expect(screen.getByText(/you chose this on/i)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("checkbox"));
    expect(api.callsTo("updateMe").at(-1)).toEqual([{ dataset_consent: false }]);
    expect(await screen.findByRole("checkbox", { checked: false })).toBeInTheDocument();
  });

  it("keeps the last saved choice when a change is refused, and says so", async () => {
    const { api, store } = setup();
    const box = await screen.findByRole("checkbox");
    api.refusal = new ApiError(503, "unavailable", "the database is unavailable right now");
    await userEvent.click(box);
    expect(await screen.findByRole("checkbox", { checked: false })).toBeEnabled();
    expect(store.getState().view.notice).toMatch(/not saved/i);
  });
});
