// vitest: the views module (views.mjs) is made from src/views/ as esbuild makes it for the bundle.
import { defineConfig } from "vitest/config";
import { viteViews } from "./views.mjs";

export default defineConfig({ plugins: [viteViews()] });
