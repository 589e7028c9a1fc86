import { runService } from "@taituri/service";
import { loadIngressConfig } from "./config.ts";

await runService({
  name: "ingress",
  loadConfig: () => loadIngressConfig(),
  // Imported after telemetry has started, so instrumentation sees the libraries load.
  load: async () => (await import("./service.ts")).startIngressService,
});
