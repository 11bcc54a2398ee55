// Package device owns what makes a kiosk a particular device: its identity
// and keys (key.go), GPIO for the relay, tamper switch and LEDs via periph
// (gpio.go), and, in later issues, device-guard integrity signals and the
// provisioning client.
//
// The device key is an Ed25519 key generated once in the state directory
// (mode 0600) and refused when group or others can access it; KeyID derives
// the key ID (COSE kid) shared by the envelope and the hub's registry.
package device
