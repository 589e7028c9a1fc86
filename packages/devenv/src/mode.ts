import type { LogFn } from "./types.ts";
import { timed } from "./util.ts";

/**
 * Where servers that this process starts run: `opts.mode`, else `$TAITURI_INFRA_MODE`, else auto,
 * which prefers containers when testcontainers finds a Docker runtime and local processes otherwise.
 */
export async function chooseMode(
  requested: string,
  log: LogFn,
): Promise<{ mode: "docker"; dockerHost: string } | { mode: "local" }> {
  if (requested !== "auto" && requested !== "docker" && requested !== "local") {
    throw new Error(`TAITURI_INFRA_MODE must be auto, docker or local, got ${JSON.stringify(requested)}`);
  }
  if (requested === "local") return { mode: "local" };
  const docker = await import("./docker.ts");
  const dockerHost = await timed(log, "looking for a Docker runtime", () => docker.dockerRuntimeHost());
  if (dockerHost) return { mode: "docker", dockerHost };
  if (requested === "docker") throw new Error("TAITURI_INFRA_MODE=docker but no Docker runtime is reachable");
  log("no Docker runtime reachable: using local processes");
  return { mode: "local" };
}
