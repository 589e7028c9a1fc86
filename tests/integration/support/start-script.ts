import { freePort } from "@taituri/devenv";

/** Every port scripts/start.ts opens, by the prefix of its `<NAME>_PORT` variable. */
const START_PORTS = [
  "INGRESS",
  "INGRESS_OPS",
  "DISPATCHER_OPS",
  "CONVERSATION",
  "GENERATION",
  "PAYMENT",
  "PAYMENT_OPS",
  "LIMITER",
  "LIMITER_GRPC",
  "SIMULATOR",
  "OIDC_ISSUER",
  "JAEGER_OTLP",
  "JAEGER_QUERY",
] as const;

export type StartPorts = Record<(typeof START_PORTS)[number], number>;

/**
 * A free port for each of scripts/start.ts's listeners, so a test runs it beside anything else on
 * the machine; set them with `startPortsEnv`.
 */
export async function freeStartPorts(): Promise<StartPorts> {
  const ports = {} as StartPorts;
  for (const name of START_PORTS) ports[name] = await freePort();
  return ports;
}

/** The `<NAME>_PORT` variables that make scripts/start.ts listen on `ports`. */
export function startPortsEnv(ports: StartPorts): Record<string, string> {
  return Object.fromEntries(Object.entries(ports).map(([name, port]) => [`${name}_PORT`, String(port)]));
}
