// Package flashmark owns glint's dynamic liveness challenge: an unpredictable,
// photosensitive-safe sequence of screen colours, the Display backends that
// show it and report when each colour was really presented, and the analysis
// of the face's response to it.
package flashmark
