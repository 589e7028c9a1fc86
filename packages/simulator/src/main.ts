/**
 * The WhatsApp simulator as a process of its own, for a cluster demo or staging (the Helm chart's
 * `simulator`): configured from the environment (config.ts), it plays Meta towards one ingress
 * until SIGTERM. Under `npm start`, scripts/start.ts starts it instead.
 */
import { exitOnConfigError } from "@taituri/config";
import { configurePseudonyms, createLogger } from "@taituri/logging";
import { onShutdown } from "@taituri/ops";
import { businessNumbersOf, loadSimulatorConfig } from "./config.ts";
import { startSimulator } from "./index.ts";

const { config, businessNumbers } = exitOnConfigError(() => {
  const config = loadSimulatorConfig();
  return { config, businessNumbers: businessNumbersOf(config) };
});
configurePseudonyms(config.PSEUDONYM_KEY);
const logger = createLogger({
  service: "simulator",
  level: config.LOG_LEVEL,
  format: config.LOG_FORMAT,
  environment: config.DEPLOYMENT_ENVIRONMENT,
});

const sim = await startSimulator({
  port: config.SIMULATOR_PORT,
  host: config.SIMULATOR_HOST,
  webhookUrl: config.SIMULATOR_WEBHOOK_URL,
  appSecret: config.WHATSAPP_APP_SECRET,
  accessToken: config.WHATSAPP_ACCESS_TOKEN,
  businessNumbers,
  ...(config.SIMULATOR_JAEGER_URL
    ? { jaegerUrl: config.SIMULATOR_JAEGER_URL, jaegerUi: config.SIMULATOR_JAEGER_UI }
    : {}),
  logger,
});
logger.info(
  {
    ui: sim.url,
    graphApi: sim.graphUrl,
    webhook: config.SIMULATOR_WEBHOOK_URL,
    shops: [...new Set(businessNumbers.map((number) => number.name))],
  },
  "ready",
);
onShutdown(
  () => sim.close(),
  (message) => logger.info(message),
);
