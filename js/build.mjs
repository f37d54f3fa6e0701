// `npm run build`: esbuild bundles src/widget.ts (with every view in src/views/, found by views.mjs) into
// ../repwidget/static/widget.js. `npm run dev` passes --watch and --sourcemap=inline.
import { pathToFileURL } from "node:url";
import * as esbuild from "esbuild";
import { esbuildViews } from "./views.mjs";

/** Bundle `entry` (with the views in `viewsDir`) into `outfile`; `minify` as the package ships it. */
export async function bundle({ entry = "src/widget.ts", outfile = "../repwidget/static/widget.js", viewsDir, minify = true, sourcemap } = {}) {
  return esbuild.context({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    minify,
    target: "es2020",
    outfile,
    sourcemap,
    logLevel: "info",
    plugins: [esbuildViews(viewsDir)],
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const sourcemap = args.find((a) => a.startsWith("--sourcemap="))?.split("=")[1];
  const context = await bundle({ sourcemap });
  if (args.includes("--watch")) await context.watch();
  else {
    await context.rebuild();
    await context.dispose();
  }
}
