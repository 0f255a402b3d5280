// Runs the browser's network runtime (ui/explore/live/gemm.js + network.js) under Node on an exported model:
//   node runtime_driver.mjs DIR KERNEL [split]
// "split": the model gets the decoder's floats only, as the page sends them, and the encoder's part apart (as the pad's
// mount brings it) after a decode — an encode before that must fail saying so ({"early": message} in the output).
// DIR holds spec.json, blob.bin (vae_core.export.export_model), z.bin (n x D float32) and x.bin (m x C*H*W float32);
// writes decoded.bin, mu.bin and logvar.bin there and prints {"kernel": ...}. Used by tests/test_browser_runtime.py.
import { readFileSync, writeFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "ui", "explore", "live");
const source = ["gemm.js", "network.js"].map((f) => readFileSync(join(root, f), "utf8")).join("\n");
const { VaeModel } = await import("data:text/javascript," + encodeURIComponent(source + "\nexport { VaeModel };"));

const [dir, kernel, sent] = process.argv.slice(2);
const floats = (name) => { const b = readFileSync(join(dir, name)); return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); };
const spec = JSON.parse(readFileSync(join(dir, "spec.json"), "utf8"));
const blob = floats("blob.bin");
let encoderPart = null;
const model = sent === "split"
  ? new VaeModel(spec, blob.slice(0, spec.decoder_floats), kernel, () => encoderPart)
  : new VaeModel(spec, blob, kernel);
const z = floats("z.bin"), x = floats("x.bin");
const write = (name, a) => writeFileSync(join(dir, name), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
write("decoded.bin", model.decode(z, z.length / spec.latent_dim));
const report = { kernel: model.kernel };
if (sent === "split") {
  try {
    model.encode(x, x.length / model.imageSize);
  } catch (err) {
    report.early = err.message;
  }
  encoderPart = { offset: spec.decoder_floats, floats: blob.slice(spec.decoder_floats) };
}
const { mu, logvar } = model.encode(x, x.length / model.imageSize);
write("mu.bin", mu);
write("logvar.bin", logvar);
console.log(JSON.stringify(report));
