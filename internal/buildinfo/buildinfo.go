// Package buildinfo holds the version stamped into glint binaries at link
// time, so that every binary reports the same version string.
package buildinfo

import "runtime/debug"

// Version is set by the linker:
//
//	go build -ldflags '-X github.com/glintdev/glint/internal/buildinfo.Version=v1.2.3'
//
// It is the one package-level variable the project accepts: the linker can
// only set string variables, and nothing writes it at run time.
var Version = "dev"

// String returns the version, with the Go toolchain and, for development
// builds, the VCS revision when the build recorded one.
func String() string {
	v := Version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v == "dev" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return v + " (" + bi.GoVersion + ")"
}
