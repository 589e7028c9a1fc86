export {
  DEFAULT_PORTS,
  FERRETDB_VERSION,
  type Infra,
  type InfraMode,
  KAFKA_VERSION,
  type LogFn,
  provisionInfra,
  type StartInfraOptions,
  startInfra,
} from "./infra/index.ts";
export { type FeatureResult, probeMongoFeatures } from "./infra/mongo-features.ts";
