// Builds the container image (Dockerfile) with buildah on a base made locally. See docs/deploy.md.
//   npm run image [-- --tag <name>]
import { parseArgs } from "node:util";
import { buildImage, IMAGE_TAG } from "@taituri/devenv/image";
import { root } from "./lib.ts";

const USAGE = `usage: npm run image [-- --tag <name>]
  makes the base image once (Debian bookworm minbase, Node and npm as package.json pins them; cached
  under ~/.cache/taituri/image-base), then builds the Dockerfile with buildah --isolation=chroot and
  buildah's layer cache, tagged ${IMAGE_TAG} unless --tag says otherwise`;

const { values } = parseArgs({
  options: {
    tag: { type: "string", default: IMAGE_TAG },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  console.log(USAGE);
} else {
  const log = (line: string) => process.stderr.write(`[image] ${line}\n`);
  const t0 = performance.now();
  try {
    const image = await buildImage({ root, tag: values.tag, log });
    const base = image.base.provisioned
      ? "made"
      : image.base.imported
        ? "imported from the cache"
        : "already in buildah's storage";
    log(`base ${image.base.tag}: ${base} (${image.base.rootfsTar})`);
    log(
      `image ${image.tag} (${image.id.slice(0, 12)}): ${image.cachedSteps} of ${image.steps} steps from ` +
        `the layer cache, ${image.size}, built in ${(image.buildMs / 1000).toFixed(1)}s; ` +
        `${((performance.now() - t0) / 1000).toFixed(1)}s in all`,
    );
    console.log(image.tag);
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  }
}
