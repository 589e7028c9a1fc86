import { runService } from "@taituri/service";
import { loadLimiterConfig } from "./config.ts";

await runService({
  name: "limiter",
  loadConfig: () => loadLimiterConfig(),
  // Imported after telemetry has started, so instrumentation sees the libraries load.
  load: async () => (await import("./service.ts")).startLimiterService,
});
