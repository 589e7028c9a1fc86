import { runService } from "@taituri/service";
import { loadIngressConfig } from "./config.ts";

await runService({
  name: "ingress",
  loadConfig: () => loadIngressConfig(),
  // The webhook is the hot path and makes its own SERVER span (app.ts); the HTTP and Fastify
  // instrumentations would pay on every request, sampled or not, and show nothing more.
  ownServerSpans: true,
  // Imported after telemetry has started, so instrumentation sees the libraries load.
  load: async () => {
    const { startIngressService } = await import("./service.ts");
    // At once: /readyz says what it waits for while Kafka or MongoDB is away.
    return (config, logger) => startIngressService(config, logger, { waitForDependencies: false });
  },
});
