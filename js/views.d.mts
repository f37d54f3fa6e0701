// Types of views.mjs (for the tests that use it).
import type { Plugin } from "esbuild";

export const VIEWS_MODULE: string;
export const VIEWS_DIR: string;
export function viewNames(dir?: string): string[];
export function viewsSource(dir?: string): string;
export function esbuildViews(dir?: string): Plugin;
export function viteViews(dir?: string): { name: string };
