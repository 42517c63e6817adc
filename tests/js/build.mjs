// Bundles the test clients into OUT (argv[2]):
//   OUT/zarr-check/{index.html,zarrita.js}     zarrita, for the chunk-value check
//   OUT/neuroglancer/{index.html,main.bundle.js,chunk_worker.bundle.js,main.bundle.css}
//   OUT/async_computation.bundle.js            (Neuroglancer loads it from "../" of its bundles)
// Neuroglancer's npm package ships ES modules that expect an app bundler; this is the minimal
// esbuild equivalent of its own build. Its icons come from a git-only package: they are replaced
// by an empty SVG (the UI still works; its buttons have no pictures).
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] ?? "site");
const emptyIcons = {
  name: "empty-icons",
  setup(build) {
    build.onResolve({ filter: /\?raw$/ }, (args) => ({ path: args.path, namespace: "empty-icon" }));
    build.onLoad({ filter: /.*/, namespace: "empty-icon" }, () => ({
      contents: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"></svg>',
      loader: "text",
    }));
  },
};
const common = { bundle: true, format: "esm", minify: true, target: "es2022", logLevel: "warning" };

mkdirSync(path.join(out, "zarr-check"), { recursive: true });
await esbuild.build({
  ...common,
  stdin: { contents: 'export * from "zarrita";', resolveDir: here },
  outfile: path.join(out, "zarr-check", "zarrita.js"),
});
copyFileSync(path.join(here, "zarr-check.html"), path.join(out, "zarr-check", "index.html"));

const lib = path.join(here, "node_modules", "neuroglancer", "lib");
const ng = { ...common, plugins: [emptyIcons], loader: { ".wasm": "file" } };
await esbuild.build({
  ...ng,
  entryPoints: {
    "main.bundle": path.join(lib, "main.bundle.js"),
    "chunk_worker.bundle": path.join(lib, "chunk_worker.bundle.js"),
  },
  outdir: path.join(out, "neuroglancer"),
});
await esbuild.build({
  ...ng,
  entryPoints: { "async_computation.bundle": path.join(lib, "async_computation.bundle.js") },
  outdir: out,
});
copyFileSync(path.join(here, "neuroglancer.html"), path.join(out, "neuroglancer", "index.html"));
