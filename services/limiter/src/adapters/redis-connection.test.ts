import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type RedisSecuritySettings, redisSecurity } from "./redis-connection.ts";

const dir = mkdtempSync(join(tmpdir(), "redis-connection-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const plain: RedisSecuritySettings = { REDIS_URL: "redis://127.0.0.1:6379", REDIS_TLS: false };

test("nothing set: no credentials, no TLS", () => {
  assert.deepEqual(redisSecurity(plain), {});
});

test("user and password, from the value or from the file (trimmed)", () => {
  assert.deepEqual(redisSecurity({ ...plain, REDIS_USERNAME: "taituri", REDIS_PASSWORD: "p" }), {
    username: "taituri",
    password: "p",
  });
  const file = join(dir, "password");
  writeFileSync(file, "from-file\n");
  assert.deepEqual(redisSecurity({ ...plain, REDIS_PASSWORD_FILE: file }), { password: "from-file" });
});

test("TLS from the flag or a rediss:// URL, with the CA file's contents", () => {
  assert.deepEqual(redisSecurity({ ...plain, REDIS_TLS: true }), { tls: {} });
  const ca = join(dir, "ca.pem");
  writeFileSync(ca, "CA");
  assert.deepEqual(
    redisSecurity({ ...plain, REDIS_URL: "rediss://redis.example:6380", REDIS_TLS_CA_FILE: ca }),
    {
      tls: { ca: "CA" },
    },
  );
});
