export { KAFKA_AUDIENCE } from "./identity.ts";
export {
  DEFAULT_PORTS,
  FERRETDB_VERSION,
  type Infra,
  type InfraKafka,
  type InfraMode,
  KAFKA_VERSION,
  type LogFn,
  localSuperUser,
  type MongoOutage,
  provisionInfra,
  type RestartableKafka,
  type RestartableKafkaOptions,
  type RestartableMongo,
  type StartInfraOptions,
  startInfra,
  startRestartableKafka,
  startRestartableMongo,
} from "./infra.ts";
export { JAEGER_TOOL, type Jaeger, type JaegerOptions, startJaeger } from "./jaeger.ts";
export { type KafkaOAuth, superUserSasl } from "./kafka.ts";
export { type FeatureResult, probeMongoFeatures } from "./mongo-features.ts";
export { freePort } from "./ports.ts";
export { type RedisCluster, type RedisClusterOptions, startRedisCluster } from "./redis-cluster.ts";
export { type RestartableRedis, startRestartableRedis } from "./restartable-redis.ts";
