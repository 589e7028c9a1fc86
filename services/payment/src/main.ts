import { runService } from "@taituri/service";
import { loadPaymentConfig } from "./config.ts";

await runService({
  name: "payment",
  loadConfig: () => loadPaymentConfig(),
  // Imported after telemetry has started, so instrumentation sees the libraries load.
  load: async () => (await import("./service.ts")).startPaymentService,
});
