import { runService } from "@taituri/service";
import { loadGenerationConfig } from "./config.ts";

await runService({
  name: "generation",
  loadConfig: () => loadGenerationConfig(),
  // Imported after telemetry has started, so instrumentation sees the libraries load.
  load: async () => (await import("./service.ts")).startGenerationService,
});
