import type { LogFn } from "./types.ts";

/** Everything a local server starter needs to know about this run. */
export interface LocalContext {
  cacheDir: string;
  /** Fresh per start; data and generated config live here. */
  runDir: string;
  /** `<cache>/logs/<run-id>/`. */
  logDir: string;
  log: LogFn;
  persist: boolean;
  readyTimeoutMs: number;
}
