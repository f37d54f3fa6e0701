// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { firstDifference, surprise } from "../src/views/continuation";
import { mount } from "../src/widget";
import { FakeModel, float32, header, int32, settle, traits } from "./fake";

function setup(extra: Record<string, unknown> = {}) {
  const model = new FakeModel(traits(4, { views: ["tokens", "continuation"], ...extra }));
  const el = document.createElement("div");
  document.body.appendChild(el);
  const store = mount(model, el);
  return { model, el, store };
}

const requests = (model: FakeModel, which?: number) =>
  model.sent.filter((m) => m.what === "continuation" && (which === undefined || m.which === which));

/** The kernel answers the last continuation request of column `which` with `tokens` so far. */
async function reply(model: FakeModel, which: number, tokens: string[], done = false, gen = 0, stopped = "") {
  const request = last(requests(model, which))!;
  const data = {
    which: which ? "intervened" : "clean",
    ids: header("int32", [tokens.length], 0),
    logprobs: header("float32", [tokens.length], 1),
    tokens,
    start: 4,
    done,
    stopped,
    labels: [],
  };
  const logprobs = tokens.map((_, i) => -0.5 * i);
  model.deliver({ type: "reply", id: request.id, what: "continuation", gen, data }, [int32(tokens.map((_, i) => 20 + i)), float32(logprobs)]);
  await settle();
  return request;
}

const last = <T>(list: T[]): T => list[list.length - 1];

const click = (el: Element) => el.dispatchEvent(new MouseEvent("click", { bubbles: true }));

describe("continuation view", () => {
  it("finds where two continuations first differ (a shorter finished one differs where it ends)", () => {
    expect(firstDifference([1, 2, 3], [1, 5, 3], false)).toBe(1);
    expect(firstDifference([1, 2], [1, 2, 3], false)).toBeNull(); // still generating: they agree so far
    expect(firstDifference([1, 2], [1, 2, 3], true)).toBe(2);
    expect(firstDifference([1, 2], [1, 2], true)).toBeNull();
  });

  it("streams tokens coloured by how unlikely they were, until done", async () => {
    const { model, el } = setup();
    expect(requests(model)).toHaveLength(1);
    expect(requests(model)[0]).toMatchObject({ which: 0, stop: 0 });
    await reply(model, 0, [" a"]);
    expect(requests(model)).toHaveLength(2); // asks for more at once
    await reply(model, 0, [" a", " b", " c"]);
    const spans = el.querySelectorAll("[data-rw-gen]");
    expect(Array.from(spans).map((s) => (s as HTMLElement).dataset.rwGen)).toEqual(["4", "5", "6"]);
    expect((spans[0] as HTMLElement).style.background).not.toBe((spans[2] as HTMLElement).style.background);
    expect(spans[1].getAttribute("title")).toContain("position 5");
    await reply(model, 0, [" a", " b", " c", " d"], true, 0, "max_new_tokens");
    expect(requests(model)).toHaveLength(3); // done: no more requests
    expect(el.querySelector("[data-rw-gen-status]")!.textContent).toBe("4 tokens (max_new_tokens)");
    expect((el.querySelector("[data-rw-stop]") as HTMLButtonElement).disabled).toBe(true);
    expect((el.querySelector('[data-rw-column="intervened"]') as HTMLElement).hidden).toBe(true);
    expect(surprise(0)).toBe(0);
    expect(surprise(Math.log(0.25))).toBeCloseTo(0.75);
  });

  it("stops on the stop button: the next request says stop", async () => {
    const { model, el } = setup();
    await reply(model, 0, [" a"]);
    const stop = el.querySelector("[data-rw-stop]") as HTMLButtonElement;
    expect(stop.disabled).toBe(false);
    click(stop);
    await reply(model, 0, [" a", " b"]);
    expect(last(requests(model))).toMatchObject({ which: 0, stop: 1 });
    await reply(model, 0, [" a", " b"], true, 0, "stopped");
    expect(requests(model)).toHaveLength(3);
    expect(el.querySelector("[data-rw-gen-status]")!.textContent).toBe("2 tokens (stopped)");
    expect(stop.disabled).toBe(true);
  });

  it("shows clean and intervened side by side; after a click the intervened one is stale until regenerated", async () => {
    const ivs = [{ type: "ablate", layer: 0, head: 1, label: "ablate head 0.1", key: "k0" }];
    const { model, el, store } = setup({ intervention_list: ivs });
    expect(requests(model).map((r) => r.which)).toEqual([0, 1]);
    await reply(model, 0, [" a"], true);
    await reply(model, 1, [" x"], true);
    const intervened = el.querySelector('[data-rw-column="intervened"]') as HTMLElement;
    expect(intervened.hidden).toBe(false);
    store.setInterventions([]); // a click: the kernel is busy
    expect(intervened.dataset.rwStale).toBe("");
    const set = last(model.sent.filter((m) => m.type === "set"))!;
    model.change("intervention_list", []);
    model.change("generation", 1);
    model.deliver({ type: "applied", id: set.id, gen: 1 });
    await settle();
    expect(requests(model).slice(2).map((r) => r.which)).toEqual([0]); // no interventions now: one column
    expect(intervened.hidden).toBe(true);
  });

  it("a click on a generated token asks to show it in every view; new tokens rebuild the views", async () => {
    const { model, el, store } = setup();
    await reply(model, 0, [" a", " b"], true);
    click(el.querySelector('[data-rw-gen="5"]')!);
    expect(last(model.sent)).toMatchObject({ type: "show_continuation", which: "clean", position: 5 });
    model.change("tokens", ["t0", "t1", "t2", "t3", " a", " b"]);
    model.change("token_ids", [10, 11, 12, 13, 20, 21]);
    model.change("selection", { ...store.selection, token: 5 });
    await settle();
    expect(store.disposed).toBe(true);
    const now = store.current();
    expect(now).not.toBe(store);
    expect(el.querySelectorAll(".rw-token")).toHaveLength(6);
    await reply(model, 0, [" a", " b"], true);
    expect(el.querySelector('[data-rw-gen="5"]')!.classList.contains("rw-selected")).toBe(true);
  });

  it("rebuilds when the new text's selection arrives before its tokens (the kernel's traits come in any order)", async () => {
    const { model, el, store } = setup();
    model.traits.tokens = ["t0", "t1", "t2", "t3", " a", " b"];
    model.traits.token_ids = [10, 11, 12, 13, 20, 21];
    const sent = model.sent.length;
    model.change("selection", { ...store.selection, token: 5 }); // beyond the old text: no view may read it
    expect(model.sent.slice(sent)).toEqual([]); // no request of the old views for a position they do not have
    model.change("tokens", model.traits.tokens);
    model.change("token_ids", model.traits.token_ids);
    await settle();
    expect(store.disposed).toBe(true);
    expect(store.current()).not.toBe(store);
    expect(el.querySelectorAll(".rw-token")).toHaveLength(6);
    expect(el.querySelector('.rw-token[data-rw-token="5"]')!.classList.contains("rw-selected")).toBe(true);
  });
});
