import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { chromiumArgs, ensureChromium } from "./chromium.ts";

const scratch = await mkdtemp(join(tmpdir(), "taituri-chromium-"));
after(() => rm(scratch, { recursive: true, force: true }));
const quiet = () => {};

async function script(name: string, body: string): Promise<string> {
  const path = join(scratch, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

describe("ensureChromium with CHROMIUM_PATH", () => {
  test("takes the binary it names and reports its version", async () => {
    const path = await script("chromium-ok", 'echo "Chromium 1.2.3 built on Debian"');
    const found = await ensureChromium({ env: { CHROMIUM_PATH: path }, cacheDir: scratch, log: quiet });
    assert.deepEqual(found, { executablePath: path, version: "Chromium 1.2.3 built on Debian" });
  });

  test("a path that is no executable file is an error that names it", async () => {
    const plain = join(scratch, "not-executable");
    await writeFile(plain, "");
    for (const path of [join(scratch, "missing"), plain, scratch])
      await assert.rejects(ensureChromium({ env: { CHROMIUM_PATH: path }, cacheDir: scratch, log: quiet }), {
        message: `CHROMIUM_PATH=${path} is not an executable file`,
      });
  });

  test("a binary that cannot start fails with its own words", async () => {
    const path = await script(
      "chromium-broken",
      'echo "error while loading shared libraries: libnss3.so" >&2; exit 127',
    );
    await assert.rejects(
      ensureChromium({ env: { CHROMIUM_PATH: path }, cacheDir: scratch, log: quiet }),
      (err: Error) => {
        assert.match(err.message, new RegExp(`^${path} does not run: `));
        assert.match(err.message, /libnss3\.so/);
        return true;
      },
    );
  });
});

test("each run gets the flags and its own profile folder", () => {
  const args = chromiumArgs("/tmp/profile-1");
  assert.equal(args.at(-1), "--user-data-dir=/tmp/profile-1");
  for (const flag of ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"])
    assert.ok(args.includes(flag));
});
