// Package capture owns the camera side of glint: the Source interface and the
// timestamped Frame it produces, the V4L2 source (on github.com/blackjack/webcam
// plus the few raw ioctls that library lacks), the file source used for replay
// and tests, pixel-format conversion to RGB and luma, camera controls
// (exposure and white-balance lock) and the supervisor that reconnects a lost
// camera with backoff.
//
// Frames handed to consumers are always owned copies: no Frame ever aliases
// driver (mmap) memory, so a consumer may keep a frame as long as it likes.
package capture
