// The views the widget mounts are found here, not listed: every `src/views/<name>.ts` (not starting with "_") is
// one view, named like its kernel panel (`repwidget/views/panels/<name>.py`). The entry point imports the module
// "virtual:repwidget-views", which esbuild (build.mjs) and vitest (vitest.config.mjs) both make from this listing.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const VIEWS_MODULE = "virtual:repwidget-views";
export const VIEWS_DIR = join(dirname(fileURLToPath(import.meta.url)), "src", "views");

/** The names of the views in `dir`, sorted. */
export function viewNames(dir = VIEWS_DIR) {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts") && !f.startsWith("_"))
    .map((f) => f.slice(0, -3))
    .sort();
}

/** The source of the views module: `VIEWS`, each view's module by its name. */
export function viewsSource(dir = VIEWS_DIR) {
  const names = viewNames(dir);
  const imports = names.map((name, i) => `import * as v${i} from ${JSON.stringify(join(dir, `${name}.ts`))};`);
  const entries = names.map((name, i) => `${JSON.stringify(name)}: v${i}`);
  return `${imports.join("\n")}\nexport const VIEWS = { ${entries.join(", ")} };\n`;
}

/** The esbuild plugin that makes the views module from `dir`. */
export function esbuildViews(dir = VIEWS_DIR) {
  return {
    name: "repwidget-views",
    setup(build) {
      build.onResolve({ filter: /^virtual:repwidget-views$/ }, () => ({ path: VIEWS_MODULE, namespace: "repwidget-views" }));
      build.onLoad({ filter: /.*/, namespace: "repwidget-views" }, () => ({
        contents: viewsSource(dir),
        resolveDir: dir,
        loader: "js",
        watchDirs: [dir], // a view added while `npm run dev` watches is bundled too
      }));
    },
  };
}

/** The same for vite (vitest). */
export function viteViews(dir = VIEWS_DIR) {
  const id = `\0${VIEWS_MODULE}`;
  return {
    name: "repwidget-views",
    resolveId: (source) => (source === VIEWS_MODULE ? id : null),
    load: (loaded) => (loaded === id ? viewsSource(dir) : null),
  };
}
