// The Kafka event payloads and their encoder, without the limiter's gRPC service: a module loaded
// before telemetry starts (the service runner, the Kafka client's record registry) must not load
// @grpc/grpc-js ahead of its instrumentation, or the limiter calls lose their spans.
export { type Encodable, encodeMessage } from "./encode.ts";
export * as fulfilment from "./gen/fulfilment/v1/fulfilment.ts";
export * as generation from "./gen/generation/v1/generation.ts";
export * as inbound from "./gen/inbound/v1/inbound.ts";
export * as outbound from "./gen/outbound/v1/outbound.ts";
export * as payment from "./gen/payment/v1/payment.ts";
