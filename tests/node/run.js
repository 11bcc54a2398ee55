// Runs a TFJS graph model on the pure-JS CPU backend of @tensorflow/tfjs and
// writes its outputs, as the reference for the ONNX parity tests
// (inference/convert). Reads one JSON request on stdin:
//   {"model": "/abs/model.json",
//    "inputs": {"input": {"shape": [1,256,256,3], "file": "/abs/in.f32"}},
//    "outputs": ["Identity", ...], "outDir": "/abs/dir"}
// Tensors are raw little-endian float32. Prints one JSON line:
//   {"outputs": {"Identity": {"shape": [...], "file": "/abs/dir/0.f32"}}}
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

async function main() {
  const req = JSON.parse(fs.readFileSync(0, 'utf8'));
  await tf.setBackend('cpu');
  const mj = JSON.parse(fs.readFileSync(req.model, 'utf8'));
  const dir = path.dirname(req.model);
  const specs = [];
  const bufs = [];
  for (const g of mj.weightsManifest) {
    specs.push(...g.weights);
    for (const p of g.paths) bufs.push(fs.readFileSync(path.join(dir, p)));
  }
  const all = Buffer.concat(bufs);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: mj.modelTopology, weightSpecs: specs, weightData,
    format: mj.format, generatedBy: mj.generatedBy, convertedBy: mj.convertedBy,
    signature: mj.signature, userDefinedMetadata: mj.userDefinedMetadata,
  }));
  const feeds = {};
  for (const [name, t] of Object.entries(req.inputs)) {
    const b = fs.readFileSync(t.file);
    const f = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    feeds[name] = tf.tensor(f, t.shape, 'float32');
  }
  let outs = model.execute(feeds, req.outputs);
  if (!Array.isArray(outs)) outs = [outs];
  const res = { backend: tf.getBackend(), version: tf.version.tfjs, outputs: {} };
  for (let i = 0; i < outs.length; i++) {
    const data = await outs[i].data();
    const file = path.join(req.outDir, `${i}.f32`);
    fs.writeFileSync(file, Buffer.from(Float32Array.from(data).buffer));
    res.outputs[req.outputs[i]] = { shape: outs[i].shape, file };
  }
  process.stdout.write(JSON.stringify(res) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + '\n');
  process.exit(1);
});
