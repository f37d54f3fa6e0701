import { describe, expect, it } from "vitest";
import { Store, describe as label, toggleAblation, unpack } from "../src/store";
import { FakeModel, float32, traits } from "./fake";

describe("store requests", () => {
  it("sends a get with an id and resolves with decoded tensors", async () => {
    const model = new FakeModel(traits());
    const store = new Store(model);
    const answer = store.request("neuron", { layer: 1, index: 3 });
    const msg = model.sent[0];
    expect(msg).toMatchObject({ type: "get", what: "neuron", layer: 1, index: 3 });
    model.deliver(
      { type: "reply", id: msg.id, what: "neuron", gen: 0, data: { values: { dtype: "float32", shape: [2], buffer: 0 }, layer: 1 } },
      [float32([0.5, -2])],
    );
    const reply = await answer;
    expect(Array.from(reply!.data.values.data)).toEqual([0.5, -2]);
    expect(reply!.data.layer).toBe(1);
  });

  it("drops the answer to a request superseded by a newer one with the same key", async () => {
    const model = new FakeModel(traits());
    const store = new Store(model);
    const first = store.request("pattern", { layer: 0, head: 0 });
    const second = store.request("pattern", { layer: 0, head: 1 });
    const [a, b] = model.sent;
    model.deliver({ type: "reply", id: b.id, what: "pattern", gen: 0, data: { head: 1 } });
    model.deliver({ type: "reply", id: a.id, what: "pattern", gen: 0, data: { head: 0 } }); // late and stale
    expect(await first).toBeNull();
    expect((await second)!.data.head).toBe(1);
  });

  it("drops answers computed on an older run", async () => {
    const model = new FakeModel(traits());
    const store = new Store(model);
    const answer = store.request("overview");
    model.change("generation", 1);
    model.deliver({ type: "reply", id: model.sent[0].id, what: "overview", gen: 0, data: {} });
    expect(await answer).toBeNull();
  });

  it("rejects on an error reply and reports it", async () => {
    const model = new FakeModel(traits());
    const store = new Store(model);
    const errors: string[] = [];
    store.on("error", (m: string) => errors.push(m));
    const answer = store.request("lens", { start: 0, stop: 99 });
    model.deliver({ type: "error", id: model.sent[0].id, message: "stop 99 is out of range" });
    await expect(answer).rejects.toThrow("out of range");
    expect(errors).toEqual(["stop 99 is out of range"]);
  });

  it("refuses a reply pointing at a missing buffer", () => {
    expect(() => unpack({ x: { dtype: "float32", shape: [1], buffer: 3 } }, [])).toThrow("missing buffer");
  });
});

describe("interventions queue", () => {
  it("sends one set at a time; while busy only the newest list waits (the last click wins)", () => {
    const model = new FakeModel(traits());
    const store = new Store(model);
    store.toggle({ layer: 0, head: 1 });
    expect(store.busy).toBe(true);
    store.toggle({ layer: 1, head: 0 });
    store.toggle({ layer: 1, head: 1 });
    const sets = () => model.sent.filter((m) => m.type === "set");
    expect(sets()).toHaveLength(1);
    expect(store.interventions.map(label)).toEqual(["ablate head 0.1 (zero)", "ablate head 1.0 (zero)", "ablate head 1.1 (zero)"]);
    model.deliver({ type: "applied", id: sets()[0].id, seq: 1, gen: 1 });
    expect(sets()).toHaveLength(2);
    expect(sets()[1].interventions).toHaveLength(3);
    expect(sets()[1].seq).toBe(2);
    model.deliver({ type: "applied", id: sets()[1].id, seq: 2, gen: 2 });
    expect(store.busy).toBe(false);
  });

  it("the kernel's answer to an older set is not painted after a newer click", () => {
    const model = new FakeModel(traits());
    const store = new Store(model);
    const painted: unknown[] = [];
    store.on("push:predictions", (r: unknown) => painted.push(r));
    store.toggle({ layer: 0, head: 0 });
    const firstId = model.sent[0].id;
    store.toggle({ layer: 0, head: 1 }); // queued
    model.deliver({ type: "applied", id: firstId, seq: 1, gen: 1 }); // sends the queued set
    model.change("generation", 1);
    model.deliver({ type: "reply", id: firstId, what: "predictions", gen: 1, data: {} });
    expect(painted).toHaveLength(0);
    const second = model.sent.filter((m) => m.type === "set")[1];
    model.deliver({ type: "applied", id: second.id, seq: 2, gen: 2 });
    model.change("generation", 2);
    model.deliver({ type: "reply", id: second.id, what: "predictions", gen: 2, data: {} });
    expect(painted).toHaveLength(1);
  });

  it("toggles ablations in the chosen mode", () => {
    let list = toggleAblation([], { layer: 2, head: 3 }, "mean");
    expect(list).toEqual([{ type: "ablate", layer: 2, head: 3, neuron: null, mode: "mean", seed: 0 }]);
    list = toggleAblation(list, { layer: 2, neuron: 3 }, "zero");
    expect(list).toHaveLength(2);
    expect(toggleAblation(list, { layer: 2, head: 3 }, "zero")).toEqual([list[1]]);
  });
});
