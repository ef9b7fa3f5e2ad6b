// Precompress every built asset as .br and .gz (served by coditect.http.static when accepted).
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const root = process.argv[2];
const walk = (dir) =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
let raw = 0, br = 0, gz = 0;
for (const path of walk(root)) {
  if (path.endsWith(".br") || path.endsWith(".gz")) continue;
  const body = readFileSync(path);
  const b = brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } });
  const g = gzipSync(body, { level: 9 });
  writeFileSync(path + ".br", b);
  writeFileSync(path + ".gz", g);
  raw += body.length; br += b.length; gz += g.length;
}
console.log(`compressed ${root}: ${raw} bytes raw, ${gz} gzip, ${br} brotli`);
