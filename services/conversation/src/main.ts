import { runService } from "@taituri/service";
import { loadConversationConfig } from "./config.ts";

await runService({
  name: "conversation",
  loadConfig: () => loadConversationConfig(),
  // Imported after telemetry has started, so instrumentation sees the libraries load.
  load: async () => (await import("./service.ts")).startConversationService,
});
