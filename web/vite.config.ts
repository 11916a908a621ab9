/**
 * Builds the console into web/dist: one hashed script and one hashed stylesheet under assets/, served by
 * src/web/static-route.ts. A relative base lets the same build be served at `/` or under any sub-path.
 */
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  resolve: {
    alias: [
      {
        // The validation rules' descriptor is dead weight in a browser: a third of the bundle.
        find: /^@bufbuild\/protovalidate\/gen\/buf\/validate\/validate_pb\.js$/,
        replacement: fileURLToPath(new URL("./src/validate-descriptor.ts", import.meta.url)),
      },
    ],
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // One entry chunk and no dynamic imports: the preload polyfill would be dead weight.
    modulePreload: { polyfill: false },
  },
});
