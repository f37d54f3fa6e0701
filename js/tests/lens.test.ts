// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { lensKind } from "../src/views/lens";
import { answer, float32, header, int32, settle, traits } from "./fake";
import { click, setup } from "./mounted";

const lensRequests = (sent: Record<string, unknown>[]) => sent.filter((m) => m.what === "lens");

describe("the lens view's logit / tuned toggle", () => {
  it("reads the selection's lens_kind only when the kernel has a tuned lens", () => {
    expect(lensKind({ lens_kind: "tuned" }, true)).toBe("tuned");
    expect(lensKind({ lens_kind: "tuned" }, false)).toBe("logit");
    expect(lensKind({}, true)).toBe("logit");
  });

  it("is hidden without a tuned lens, and the request asks for the logit lens", () => {
    const { el, model } = setup();
    expect((el.querySelector('[data-rw-lens-kind="tuned"]')!.parentElement as HTMLElement).hidden).toBe(true);
    expect(lensRequests(model.sent).map((m) => m.lens)).toEqual(["logit"]);
  });

  it("selects the tuned lens, asks the kernel for it and paints its answer", async () => {
    const { el, model, store } = setup({ shape: { ...traits().shape, tuned_lens: true } });
    const toggle = el.querySelector('[data-rw-lens-kind="tuned"]')!;
    expect((toggle.parentElement as HTMLElement).hidden).toBe(false);
    answer(model, "lens", { ids: header("int32", [2, 4], 0), probs: header("float32", [2, 4], 1), start: 0, vocab: { "1": "a" } }, [
      int32([1, 1, 1, 1, 1, 1, 1, 1]),
      float32([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
    ]);
    await settle();
    expect(el.querySelector('[data-rw-lens-kind="logit"]')!.getAttribute("aria-pressed")).toBe("true");
    click(toggle);
    expect(store.selection.lens_kind).toBe("tuned");
    expect(lensRequests(model.sent).map((m) => m.lens)).toEqual(["logit", "tuned"]);
    answer(model, "lens", { ids: header("int32", [2, 4], 0), probs: header("float32", [2, 4], 1), start: 0, vocab: { "2": "b" } }, [
      int32([2, 2, 2, 2, 2, 2, 2, 2]),
      float32([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]),
    ]);
    await settle();
    expect(toggle.getAttribute("aria-pressed")).toBe("true");
    expect(el.querySelector(".rw-lens-view h4 > span")!.textContent).toBe("Tuned lens");
    expect(el.querySelector('td[data-rw-layer="0"][data-rw-token="1"]')!.textContent).toBe("b");
  });
});
