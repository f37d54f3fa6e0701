// The views module that views.mjs makes at build time from src/views/*.ts: each view's module by its name.
declare module "virtual:repwidget-views" {
  export const VIEWS: Record<string, unknown>;
}
