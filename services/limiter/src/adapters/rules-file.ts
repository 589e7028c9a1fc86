import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { parse } from "yaml";
import { compileRules, type Rules } from "../domain/rules.ts";

/** Reads and validates a rules file; throws naming every problem. */
export function readRules(path: string): Rules {
  return compileRules(parse(readFileSync(path, "utf8")));
}

export interface RulesHolder {
  /** The rules in force: replaced as a whole, so a call sees either the old or the new file. */
  current(): Rules;
  stop(): void;
}

/**
 * Loads the rules (a bad file at start-up is an error) and reloads them when the file changes.
 * Polling rather than fs.watch: it survives editors that replace the file and Kubernetes ConfigMap
 * updates (a symlink swap). A bad new file keeps the old rules and is reported through onReload.
 */
export function watchRules(
  path: string,
  options: { intervalMs: number; onReload: (error?: Error) => void },
): RulesHolder {
  let rules = readRules(path);
  const listener = () => {
    try {
      rules = readRules(path);
      options.onReload();
    } catch (error) {
      options.onReload(error instanceof Error ? error : new Error(String(error)));
    }
  };
  watchFile(path, { interval: options.intervalMs, persistent: false }, listener);
  return {
    current: () => rules,
    stop: () => unwatchFile(path, listener),
  };
}
