/**
 * The yardstick: a bare Fastify hello-world (default JSON body parser, no hooks, no logging), given
 * the same signed webhook traffic as ingress, so the ratio shows what ingress's own work and Kafka's
 * acknowledgement cost. Listens on BENCH_PORT and prints its URL once listening.
 */
import Fastify from "fastify";

const app = Fastify({ logger: false, bodyLimit: 3 * 1024 * 1024 });
app.post("/webhook", async () => ({ hello: "world" }));
const url = await app.listen({ host: "127.0.0.1", port: Number(process.env.BENCH_PORT ?? 0) });
process.stdout.write(`listening ${url}\n`);
process.once("SIGTERM", () => {
  app.close().then(() => process.exit(0));
});
