export {
  DEFAULT_PORTS,
  FERRETDB_VERSION,
  type Infra,
  type InfraMode,
  KAFKA_VERSION,
  type LogFn,
  provisionInfra,
  type RestartableKafka,
  type RestartableKafkaOptions,
  type StartInfraOptions,
  startInfra,
  startRestartableKafka,
} from "./infra/index.ts";
export { JAEGER_TOOL, type Jaeger, type JaegerOptions, startJaeger } from "./infra/jaeger.ts";
export { type FeatureResult, probeMongoFeatures } from "./infra/mongo-features.ts";
export { type RedisCluster, type RedisClusterOptions, startRedisCluster } from "./infra/redis-cluster.ts";
