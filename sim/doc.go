// Package sim is glint's closed-loop physical simulator of the kiosk: a face
// from a real photograph on a coarse 3-D head, ambient light and the kiosk
// screen as an area light, a rolling-shutter camera with noise and delayed
// auto exposure / white balance, a screen with vsync latency, and the
// presentation-attack species (print, screen, replay, injection, relight,
// mask). The camera implements capture.Source and capture.Controls and the
// screen implements flashmark.Display, so liveness code runs against the
// simulator exactly as against the hardware. Sub-package eval is the ISO/IEC
// 30107-3 evaluation harness built on it.
//
// Everything is computed in linear light. Per-pixel geometry (depth, normals,
// albedo, specular, emission) is built once per attempt by a Scene; each
// frame only relights it, row by row, which is what makes the renderer fast
// enough for thousand-attempt evaluations. See docs/sim.md.
package sim
