import { describe, expect, it } from "vitest";
import { labelOf, toggleAblation, wire } from "../src/interventions";
import { Store, unpack } from "../src/store";
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
    expect(store.interventions.map((iv) => [iv.layer, iv.head])).toEqual([[0, 1], [1, 0], [1, 1]]);
    expect(store.interventions.map(labelOf)).toEqual(["applying\u2026", "applying\u2026", "applying\u2026"]);
    model.deliver({ type: "applied", id: sets()[0].id, gen: 1 });
    expect(sets()).toHaveLength(2);
    expect(sets()[1].interventions).toHaveLength(3);
    expect(sets()[1].seq).toBe(2);
    model.deliver({ type: "applied", id: sets()[1].id, gen: 2 });
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

  it("toggles ablations in the chosen mode, new ones with only the fields they need", () => {
    let list = toggleAblation([], { layer: 2, head: 3 }, "mean");
    expect(list).toEqual([{ type: "ablate", layer: 2, head: 3, mode: "mean" }]);
    list = toggleAblation(list, { layer: 2, neuron: 3 }, "zero");
    expect(list).toHaveLength(2);
    expect(toggleAblation(list, { layer: 2, head: 3 }, "zero")).toEqual([list[1]]);
    // one the kernel listed (full JSON, its label and key) toggles off too, and is sent back by reference
    const listed = { type: "ablate", layer: 1, head: 0, neuron: null, mode: "zero", seed: 0, sae: null, feature: null, direction: [], label: "ablate head 1.0 (zero)", key: "k1" };
    expect(toggleAblation([listed], { layer: 1, head: 0 }, "zero")).toEqual([]);
    expect(wire([listed, ...list])).toEqual([{ ref: "k1" }, ...list]);
    expect(labelOf(listed)).toBe("ablate head 1.0 (zero)");
  });

  it("a click sends this view's name, its own sequence number and the predictions it wants next", () => {
    const model = new FakeModel(traits());
    const store = new Store(model);
    store.toggle({ layer: 0, head: 1 });
    expect(model.sent[0]).toMatchObject({ type: "set", view: store.view, seq: 1, then: { what: "predictions", position: 3 } });
  });
});

describe("one widget displayed twice (two stores on one model)", () => {
  it("ids are unique across stores and each store takes only the replies to its own requests", async () => {
    const model = new FakeModel(traits());
    const a = new Store(model); // first output of `ex`
    const b = new Store(model); // `ex` shown again in another cell
    const pa = a.request("pattern", { layer: 0, head: 0 });
    const pb = b.request("lens", { start: 0, stop: 4 });
    const [ma, mb] = model.sent;
    expect(ma.id).not.toBe(mb.id);
    // the kernel answers B's lens request first; comm messages reach every view of the model
    model.deliver({ type: "reply", id: mb.id, what: "lens", gen: 0, data: { ids: "lens-data" } });
    model.deliver({ type: "reply", id: ma.id, what: "pattern", gen: 0, data: { head: 0 } });
    expect((await pa)!.what).toBe("pattern");
    expect((await pb)!.what).toBe("lens");
  });

  it("a reply of another kind under a request's id does not resolve it", async () => {
    const model = new FakeModel(traits());
    const a = new Store(model);
    const pa = a.request("pattern", { layer: 0, head: 0 });
    const id = model.sent[0].id;
    model.deliver({ type: "reply", id, what: "lens", gen: 0, data: {} });
    model.deliver({ type: "reply", id, what: "pattern", gen: 0, data: { head: 0 } });
    expect((await pa)!.what).toBe("pattern");
  });

  it("one view's click settles only that view; the other's sequence numbers are its own", () => {
    const model = new FakeModel(traits());
    const a = new Store(model);
    const b = new Store(model);
    a.toggle({ layer: 0, head: 0 });
    b.toggle({ layer: 1, head: 1 });
    const [sa, sb] = model.sent;
    expect([sa.seq, sb.seq]).toEqual([1, 1]);
    expect(sa.view).not.toBe(sb.view);
    model.deliver({ type: "applied", id: sa.id, gen: 1 });
    expect(a.busy).toBe(false);
    expect(b.busy).toBe(true);
  });

  it("a disposed store stops listening to the model", () => {
    const model = new FakeModel(traits());
    const store = new Store(model);
    let calls = 0;
    store.on("selection", () => calls++);
    store.dispose();
    model.change("selection", { ...model.traits.selection, token: 0 });
    expect(calls).toBe(0);
    expect(model.listeners()).toBe(0);
  });
});
