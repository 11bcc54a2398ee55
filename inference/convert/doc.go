// Package convert turns a TensorFlow.js graph model (model.json plus its
// binary weight shards) into an equivalent ONNX model (opset 17), written with
// the protobuf types of inference/internal/onnxpb.
//
// The TFJS models glint uses come from npm packages; ONNX Runtime runs the
// converted models on the device. The conversion is done once at build time
// (make deps, glintctl models convert), never on the device.
//
// # Layout
//
// TensorFlow graphs are NHWC; ONNX convolutions and pools are NCHW. The
// converter keeps the model's interface in TensorFlow's layout (the ONNX
// inputs and outputs have exactly the TFJS shapes) and runs the inside in
// NCHW: every rank-4 activation carries a layout tag, the graph input gets one
// Transpose to NCHW before the first op that needs it, constants broadcast
// against NCHW tensors are permuted at conversion time (so [C], [1,1,C] and
// [1,1,1,C] become [C,1,1] or [1,C,1,1]), axis arguments (Pad, ConcatV2, Mean,
// Sum, Squeeze) are remapped, and a Transpose back to NHWC is inserted only
// where the element order matters (Reshape, MatMul, graph outputs, ...).
// Convolution kernels are transposed from HWIO to OIHW, depthwise kernels from
// [H,W,C,M] to [C*M,1,H,W] with group=C.
//
// # Weights
//
// Weight shards are concatenated in manifest order. float32 and int32 are
// read as little-endian; float16 weights (quantization dtype float16) are
// widened to float32, and uint8/uint16 affine-quantised weights are
// dequantised as q*scale+min (TFJS's own rule), so the ONNX model is float32
// throughout.
package convert
