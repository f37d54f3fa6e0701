// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { requestKey, StaticModel } from "../src/static";
import { renderStatic } from "../src/widget";
import { traits } from "./fake";

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

  it("answers a saved request with its buffers, under the request's own id", async () => {
    const saved = { request: { what: "neuron", layer: 0, index: 3 }, reply: { type: "reply", what: "neuron", gen: 0, data: { values: { dtype: "float32", shape: [2], buffer: 0 } } }, buffers: [b64([1.5, -2])] };
    const model = new StaticModel(traits(2), [saved]);
    const got = received(model);
    model.send({ type: "get", id: 17, what: "neuron", index: 3, layer: 0 });
    await Promise.resolve();
    expect(got).toHaveLength(1);
    expect(got[0].msg.id).toBe(17);
    expect(got[0].buffers[0].getFloat32(4, true)).toBe(-2);
  });

  it("refuses changes and unsaved requests with an error that says why, and is never editable", async () => {
    const model = new StaticModel(traits(2, { editable: true }), []);
    const got = received(model);
    model.send({ type: "set", id: 1, seq: 1, interventions: [] });
    model.send({ type: "get", id: 2, what: "pattern", layer: 0, head: 1 });
    await Promise.resolve();
    expect(got.map((g) => g.msg.type)).toEqual(["error", "error"]);
    expect(got[0].msg.message).toMatch(/static snapshot/);
    expect(model.get("error")).toMatch(/did not save pattern/);
    expect(model.get("editable")).toBe(false);
  });

  it("renders the views marked static, with no remove buttons", () => {
    const el = document.createElement("div");
    document.body.appendChild(el);
    const list = [{ type: "ablate", layer: 0, head: 1, neuron: null, mode: "zero" }];
    renderStatic(el, traits(3, { intervention_list: list }), []);
    expect(el.querySelector("[data-rw-static]")).not.toBeNull();
    expect(el.querySelector("[data-rw-remove]")).toBeNull();
    expect(el.querySelector(".rw-interventions-view")!.textContent).toContain("ablate head 0.1");
  });
});
