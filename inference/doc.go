// Package inference runs glint's on-device face models with ONNX Runtime
// (github.com/yalue/onnxruntime_go, cgo): the Runtime component owns the
// process's one ORT environment, a Session runs one model with preallocated
// input and output tensors.
//
// The models are TensorFlow.js graph models from an npm package, converted
// to ONNX at build time by inference/convert (see docs/models.md); make deps
// puts them and the ONNX Runtime shared library under models/.
package inference
