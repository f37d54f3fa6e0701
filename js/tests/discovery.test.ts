// @vitest-environment happy-dom
// Adding a view is one file in src/views/ (and its kernel panel): nothing else names it. Proved on a copy of
// src/ with a throwaway view added, bundled as `npm run build` bundles the package's.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";
import { afterAll, describe, expect, it } from "vitest";
import { esbuildViews, VIEWS_DIR, viewNames } from "../views.mjs";
import { VIEWS } from "../src/widget";
import { FakeModel, traits } from "./fake";

const THROWAWAY = `import type { Store } from "../store";
export function mount(el: HTMLElement, store: Store): void {
  const div = el.ownerDocument.createElement("div");
  div.className = "rw-throwaway";
  div.textContent = String(store.model.get("tokens").length);
  el.appendChild(div);
}
export const styles = ".rw-throwaway { color: #123456; }";
`;

describe("views are found, not listed", () => {
  const dir = mkdtempSync(join(tmpdir(), "rw-views-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("gives the widget every module in src/views/, each with a mount", () => {
    expect(Object.keys(VIEWS).sort()).toEqual(viewNames());
    expect(viewNames()).toContain("predictions");
    for (const view of Object.values(VIEWS)) expect(typeof view.mount).toBe("function");
  });

  it("bundles and mounts a view added as one file, in the column the kernel names, with its styles", async () => {
    cpSync(join(VIEWS_DIR, ".."), join(dir, "src"), { recursive: true });
    writeFileSync(join(dir, "src", "views", "throwaway.ts"), THROWAWAY);
    const views = join(dir, "src", "views");
    const built = await esbuild.build({
      entryPoints: [join(dir, "src", "widget.ts")], bundle: true, format: "iife", globalName: "bundled", write: false,
      logLevel: "silent", plugins: [esbuildViews(views)],
    }); // prettier-ignore (the package's build is ESM; an IIFE evaluates here without a module loader)
    const widget = new Function(`${built.outputFiles[0].text}; return bundled;`)();
    expect(Object.keys(widget.VIEWS).sort()).toEqual([...viewNames(), "throwaway"].sort());
    const base = traits(3);
    const model = new FakeModel({
      ...base,
      views: ["tokens", "throwaway"],
      shape: { ...base.shape, places: { tokens: "top", throwaway: "side" } },
    });
    const el = document.createElement("div");
    document.body.appendChild(el);
    widget.mount(model, el);
    expect(el.querySelector(".rw-side .rw-throwaway")?.textContent).toBe("3");
    expect(el.querySelector(".rw-top .rw-tokens-view")).not.toBeNull();
    expect(document.head.querySelector("style[data-repwidget-style]")?.textContent).toContain(".rw-throwaway");
  });
});
