// The WebAssembly module's names section, kept out of the module the Worker loads and in a file
// beside it, so that the upload is smaller and starts sooner while a logged stack trace can still
// be read: `npm run symbolize < log.txt` names every `wasm-function[N]` frame from that file.
//
// A panic's location (`panicked at src/...:line:col`) is part of its message, not of the names
// section, so the log shows where a panic happened without this file.

import { readFileSync, writeFileSync } from "node:fs";

const NAME_SECTION = "name";
const FUNCTION_NAMES = 1;

/** An unsigned LEB128 number at `offset`: its value and the offset after it. */
function leb(bytes, offset) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[offset];
    offset += 1;
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, offset];
  }
}

/** The function names of a names section's payload, by function index. */
function functionNames(payload) {
  const names = {};
  const decoder = new TextDecoder();
  let offset = 0;
  while (offset < payload.length) {
    const id = payload[offset];
    const [size, start] = leb(payload, offset + 1);
    if (id === FUNCTION_NAMES) {
      let [count, at] = leb(payload, start);
      for (; count > 0; count -= 1) {
        const [index, nameAt] = leb(payload, at);
        const [length, textAt] = leb(payload, nameAt);
        names[index] = decoder.decode(payload.subarray(textAt, textAt + length));
        at = textAt + length;
      }
    }
    offset = start + size;
  }
  return names;
}

/**
 * Rewrites `wasmPath` without its names section and writes the function names to `namesPath`
 * as JSON (`{"functions": {"index": "name"}}`). A module without one is left as it is.
 */
export function splitNames(wasmPath, namesPath) {
  const bytes = readFileSync(wasmPath);
  const kept = [bytes.subarray(0, 8)];
  let names = null;
  let offset = 8;
  while (offset < bytes.length) {
    const [size, start] = leb(bytes, offset + 1);
    const end = start + size;
    let isNames = false;
    if (bytes[offset] === 0) {
      const [length, nameAt] = leb(bytes, start);
      isNames = bytes.subarray(nameAt, nameAt + length).toString("utf8") === NAME_SECTION;
      if (isNames) names = functionNames(bytes.subarray(nameAt + length, end));
    }
    if (!isNames) kept.push(bytes.subarray(offset, end));
    offset = end;
  }
  if (!names) return;
  writeFileSync(wasmPath, Buffer.concat(kept));
  writeFileSync(namesPath, `${JSON.stringify({ functions: names })}\n`);
}

/** `text` with every `wasm-function[N]` followed by its name, where `names` has it. */
export function symbolize(text, names) {
  return text.replace(/wasm-function\[(\d+)\]/g, (frame, index) => {
    const name = names.functions[index];
    return name ? `${frame} ${name}` : frame;
  });
}
