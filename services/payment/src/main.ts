import { runService } from "@taituri/service";
import { loadPaymentConfig } from "./config.ts";

await runService({
  name: "payment",
  loadConfig: () => loadPaymentConfig(),
  // Imported after telemetry has started, so instrumentation sees the libraries load.
  load: async () => {
    const { startPaymentService } = await import("./service.ts");
    // At once: /readyz says what it waits for while Kafka or MongoDB is away.
    return (config, logger) => startPaymentService(config, logger, { waitForDependencies: false });
  },
});
