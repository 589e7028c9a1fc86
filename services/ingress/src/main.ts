import { runService } from "@taituri/service";
import { loadIngressConfig } from "./config.ts";

await runService({
  name: "ingress",
  loadConfig: () => loadIngressConfig(),
  // The webhook is the hot path and makes its own span under the HTTP server span: Fastify's spans
  // per hook there would cost throughput and show nothing more.
  fastifyIgnoreRoutes: ["/webhook"],
  // Imported after telemetry has started, so instrumentation sees the libraries load.
  load: async () => (await import("./service.ts")).startIngressService,
});
