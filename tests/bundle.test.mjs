// What the deployed WebAssembly module must not carry. The checks read the function names the
// build moved out of the module (build/index_bg.names.json), so they see exactly what is uploaded.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../scripts/setup.mjs";

function functionNames() {
  const names = JSON.parse(readFileSync(join(ROOT, "build", "index_bg.names.json"), "utf8"));
  return Object.values(names.functions);
}

test("the module has no URL parser: the url and idna crates and their Unicode tables cost 73 KiB of the gzip upload", () => {
  const names = functionNames();
  assert.ok(names.length > 1000, `only ${names.length} function names: is the build current?`);
  const parsers = names.filter((name) => /(^|[<\s&])(url|idna|idna_adapter|icu_[a-z_]+)(\[[0-9a-f]+\])?::/.test(name));
  assert.deepEqual(parsers.slice(0, 5), [], "something calls Request::url() or url::Url: split the URL text instead (core::edge::http::query_of)");
});
