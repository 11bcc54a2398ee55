// Package systemd holds glint's unit files, sysusers.d and tmpfiles.d entries; its test verifies them with systemd-analyze.
package systemd
