// @vitest-environment happy-dom
import { describe, expect, it } from "vitest";
import { mount } from "../src/widget";
import { FakeModel, traits } from "./fake";

describe("tokens view warning", () => {
  it("shows the kernel's note on the prompt, and hides it when there is none", () => {
    const model = new FakeModel(traits(4, { warning: "3 of the prompt's 4 tokens are words the demo model does not know" }));
    const el = document.createElement("div");
    document.body.appendChild(el);
    mount(model, el);
    const warning = el.querySelector<HTMLElement>(".rw-tokens-view [data-rw-warning]")!;
    expect(warning.hidden).toBe(false);
    expect(warning.textContent).toContain("words the demo model does not know");
    model.change("warning", "");
    expect(warning.hidden).toBe(true);
  });

  it("stays hidden for a widget without the trait (a page saved before it existed)", () => {
    const model = new FakeModel(traits(4));
    const el = document.createElement("div");
    mount(model, el);
    expect(el.querySelector<HTMLElement>("[data-rw-warning]")!.hidden).toBe(true);
  });
});
