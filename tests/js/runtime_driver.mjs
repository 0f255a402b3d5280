// Runs the browser's network runtime (ui/explore/live/gemm.js + network.js) under Node on an exported model:
//   node runtime_driver.mjs DIR KERNEL
// DIR holds spec.json, blob.bin (vae_core.export.export_model), z.bin (n x D float32) and x.bin (m x C*H*W float32);
// writes decoded.bin, mu.bin and logvar.bin there and prints {"kernel": ...}. Used by tests/test_browser_runtime.py.
import { readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "ui", "explore", "live");
const source = ["gemm.js", "network.js"].map((f) => readFileSync(join(root, f), "utf8")).join("\n");
const { VaeModel } = await import("data:text/javascript," + encodeURIComponent(source + "\nexport { VaeModel };"));

const [dir, kernel] = process.argv.slice(2);
const floats = (name) => { const b = readFileSync(join(dir, name)); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); };
const spec = JSON.parse(readFileSync(join(dir, "spec.json"), "utf8"));
const model = new VaeModel(spec, floats("blob.bin"), kernel);
const z = floats("z.bin"), x = floats("x.bin");
const write = (name, a) => writeFileSync(join(dir, name), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
write("decoded.bin", model.decode(z, z.length / spec.latent_dim));
const { mu, logvar } = model.encode(x, x.length / model.imageSize);
write("mu.bin", mu);
write("logvar.bin", logvar);
console.log(JSON.stringify({ kernel: model.kernel }));
