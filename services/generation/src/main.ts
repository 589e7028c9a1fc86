import { runService } from "@taituri/service";
import { loadGenerationConfig } from "./config.ts";

await runService({
  name: "generation",
  loadConfig: () => loadGenerationConfig(),
  // Imported after telemetry has started, so instrumentation sees the libraries load.
  load: async () => {
    const { startGenerationService } = await import("./service.ts");
    // At once: /readyz says what it waits for while Kafka or MongoDB is away.
    return (config, logger) => startGenerationService(config, logger, { waitForDependencies: false });
  },
});
