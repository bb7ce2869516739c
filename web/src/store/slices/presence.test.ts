import { describe, expect, it } from "vitest";
import { bob } from "../../test/fixtures";
import { presenceReducer } from "./presence";

describe("presenceReducer", () => {
  it("forgets presence while disconnected, since offline events are missed", () => {
    const online = presenceReducer({}, { type: "presence_changed", userId: bob.id, online: true });
    expect(online).toEqual({ [bob.id]: true });
    expect(presenceReducer(online, { type: "connection_changed", status: "online" })).toBe(online);
    expect(presenceReducer(online, { type: "connection_changed", status: "reconnecting" })).toEqual({});
  });
});
