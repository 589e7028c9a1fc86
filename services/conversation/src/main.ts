import { runService } from "@taituri/service";
import { loadConversationConfig } from "./config.ts";

await runService({
  name: "conversation",
  loadConfig: () => loadConversationConfig(),
  // Imported after telemetry has started, so instrumentation sees the libraries load.
  load: async () => {
    const { startConversationService } = await import("./service.ts");
    // At once: /readyz says what it waits for while Kafka or MongoDB is away.
    return (config, logger) => startConversationService(config, logger, { waitForDependencies: false });
  },
});
