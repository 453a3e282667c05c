import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

// The built entry points, run as a user would; --help and bad options exit before connecting.
function run(script: string, ...args: string[]) {
  const path = fileURLToPath(new URL(`../${script}.js`, import.meta.url));
  return spawnSync(process.execPath, [path, ...args], { encoding: "utf8", env: { ...process.env, GIOBBA_SERVER: "" } });
}

const OPTIONS: Record<string, string[]> = {
  worker: ["--server", "--queues", "--concurrency", "--drain"],
  watch: ["--server", "--from", "--queue", "--task", "--json"],
  submit: ["--server", "--batch"],
};

for (const [script, options] of Object.entries(OPTIONS)) {
  test(`${script} --help and -h print every option and exit 0`, () => {
    for (const flag of ["--help", "-h"]) {
      const { status, stdout, stderr } = run(script, flag);
      assert.equal(status, 0, stderr);
      assert.match(stdout, new RegExp(`^usage: node dist/${script}\\.js`));
      for (const option of [...options, "--help"]) assert.ok(stdout.includes(option), `${option} missing`);
      assert.ok(stdout.includes("(default 127.0.0.1:50051)"));
    }
  });

  test(`${script} refuses an unknown option in one line, exit 2`, () => {
    const { status, stdout, stderr } = run(script, "--x");
    assert.equal(status, 2);
    assert.equal(stdout, "");
    assert.equal(stderr, `${script}: unknown option --x (see --help)\n`);
  });
}
