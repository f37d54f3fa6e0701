// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { requestKey, StaticModel } from "../src/static";
import { Store } from "../src/store";
import { renderStatic } from "../src/widget";
import { FakeModel, traits } from "./fake";

const b64 = (values: number[]) => btoa(String.fromCharCode(...new Uint8Array(new Float32Array(values).buffer)));

function received(model: StaticModel): any[] {
  const out: any[] = [];
  model.on("msg:custom", (msg: any, buffers: DataView[]) => out.push({ msg, buffers }));
  return out;
}

describe("static snapshot", () => {
  it("keys requests without their id, whatever the field order", () => {
    expect(requestKey({ type: "get", id: 4, what: "pattern", layer: 1, head: 2 })).toBe(
      requestKey({ head: 2, what: "pattern", layer: 1 }),
    );
    expect(requestKey({ what: "pattern", layer: 1, head: 2 })).not.toBe(requestKey({ what: "pattern", layer: 2, head: 1 }));
  });

  it("lets the store answer a saved request itself, under the request's own id, for the current run only", async () => {
    const saved = {
      request: { what: "neuron", layer: 0, index: 3 },
      reply: { type: "reply", what: "neuron", gen: 0, data: { values: { dtype: "float32", shape: [2], buffer: 0 } } },
      buffers: [b64([1.5, -2])],
    };
    const model = new FakeModel(traits(2, { snapshot: [saved] }));
    const store = new Store(model);
    const reply = await store.request("neuron", { index: 3, layer: 0 });
    expect(Array.from(reply!.data.values.data as Float32Array)).toEqual([1.5, -2]);
    expect(model.sent).toHaveLength(0); // no kernel asked
    void store.request("neuron", { index: 4, layer: 0 }); // not saved: the kernel is asked
    expect(model.sent.map((m) => m.index)).toEqual([4]);
    model.change("generation", 1); // a new run: the saved answers are stale
    void store.request("neuron", { index: 3, layer: 0 });
    expect(model.sent.map((m) => m.index)).toEqual([4, 3]);
  });

  it("refuses changes and unsaved requests with an error that says why, and is never editable", async () => {
    const model = new StaticModel(traits(2, { editable: true }), []);
    const got = received(model);
    model.send({ type: "set", id: 1, seq: 1, interventions: [] });
    model.send({ type: "get", id: 2, what: "pattern", layer: 0, head: 1 });
    await Promise.resolve();
    expect(got.map((g) => g.msg.type)).toEqual(["error", "error"]);
    expect(got[0].msg.message).toMatch(/static snapshot/);
    expect(model.get("error")).toBeFalsy(); // no red error bar for what was not saved: a calm notice
    expect(model.get("notice")).toMatch(/^Not saved in this page: the pattern for this selection/);
    expect(model.get("editable")).toBe(false);
  });

  it("renders the views marked static, with no remove buttons", () => {
    const el = document.createElement("div");
    document.body.appendChild(el);
    const list = [{ type: "ablate", layer: 0, head: 1, neuron: null, mode: "zero", label: "ablate head 0.1 (zero)", key: "k" }];
    renderStatic(el, traits(3, { intervention_list: list }), []);
    expect(el.querySelector("[data-rw-static]")).not.toBeNull();
    expect(el.querySelector("[data-rw-remove]")).toBeNull();
    expect(el.querySelector(".rw-interventions-view")!.textContent).toContain("ablate head 0.1");
  });
});
