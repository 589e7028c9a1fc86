import type { Logger } from "@taituri/logging";
import { connectBackbone, type RunningService, serveOps } from "@taituri/service";
import type { GenerationConfig } from "./config.ts";

/**
 * The generation service's process: its dependencies (Kafka for rounds, MongoDB for claims and
 * images) and its ops endpoints. The round consumer joins here when generation requests exist.
 */
export async function startGenerationService(
  config: GenerationConfig,
  logger: Logger,
): Promise<RunningService> {
  const backbone = await connectBackbone("generation", config, logger);
  return serveOps(backbone, { port: config.GENERATION_PORT, host: config.GENERATION_HOST });
}
