package device

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Provisioning wire format, shared by the device (glintctl provision,
// glintd provision) and the hub (POST /api/v1/provision). The technician
// scans or types a provisioning link; the device signs a Registration with
// its key — proof that it holds the private key of the public key it
// registers — and the hub answers with a ProvisionResponse.

// ProvisionScheme is the URL scheme of provisioning links (QR codes):
// glint://provision?hub=<hub API URL>&token=<claim token>[&ca=<sha256>].
const ProvisionScheme = "glint"

// ProvisionLink is a parsed provisioning link.
type ProvisionLink struct {
	// Hub is the hub's API base URL (https://hub.example:8780).
	Hub string
	// Token is the one-time claim token.
	Token string
	// CAFingerprint, when set, is the hex SHA-256 of the DER certificate
	// the hub's HTTPS chain must contain (a self-signed hub CA is pinned
	// this way, no system roots needed).
	CAFingerprint string
}

// String renders the link as glint://provision?… (what the QR code holds).
func (l ProvisionLink) String() string {
	q := url.Values{}
	q.Set("hub", l.Hub)
	q.Set("token", l.Token)
	if l.CAFingerprint != "" {
		q.Set("ca", l.CAFingerprint)
	}
	return ProvisionScheme + "://provision?" + q.Encode()
}

// ParseProvisionLink parses a glint://provision link.
func ParseProvisionLink(s string) (ProvisionLink, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return ProvisionLink{}, fmt.Errorf("provisioning link: %w", err)
	}
	if u.Scheme != ProvisionScheme || u.Host != "provision" {
		return ProvisionLink{}, fmt.Errorf("provisioning link: want %s://provision?hub=…&token=…", ProvisionScheme)
	}
	q := u.Query()
	l := ProvisionLink{Hub: q.Get("hub"), Token: q.Get("token"), CAFingerprint: q.Get("ca")}
	if err := l.Check(); err != nil {
		return ProvisionLink{}, err
	}
	return l, nil
}

// Check validates the hub URL, the token's form and the fingerprint.
func (l ProvisionLink) Check() error {
	u, err := url.Parse(l.Hub)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("provisioning: hub %q must be an http(s):// URL", l.Hub)
	}
	if len(l.Token) < 16 || len(l.Token) > 128 || strings.Trim(l.Token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return errors.New("provisioning: token must be 16–128 URL-safe base64 characters")
	}
	if l.CAFingerprint != "" {
		if b, err := hex.DecodeString(l.CAFingerprint); err != nil || len(b) != sha256.Size {
			return errors.New("provisioning: ca fingerprint must be 64 hex digits (SHA-256)")
		}
	}
	return nil
}

// HardwareFacts describe the device as it registers: what a technician or
// the operations team checks, and what the guard can later compare.
type HardwareFacts struct {
	Hostname string `json:"hostname,omitempty"`
	Arch     string `json:"arch"`
	Kernel   string `json:"kernel,omitempty"`
	OS       string `json:"os,omitempty"`
	CPUModel string `json:"cpu_model,omitempty"`
	CPUs     int    `json:"cpus"`
	// DMI holds the readable /sys/class/dmi/id fields (vendor, product,
	// board, BIOS; serials only when readable, i.e. as root).
	DMI map[string]string `json:"dmi,omitempty"`
	// Guard is the device guard's summary at registration.
	Guard *ReportSummary `json:"guard,omitempty"`
	// TPM is whether the identity key is held in a TPM.
	TPM bool `json:"tpm"`
}

// dmiFields are the DMI attributes reported (files under
// /sys/class/dmi/id).
var dmiFields = []string{"sys_vendor", "product_name", "product_version", "product_serial", "product_uuid",
	"board_vendor", "board_name", "board_serial", "bios_vendor", "bios_version", "bios_date", "chassis_type"}

// CollectFacts reads the hardware facts under root ("/" normally; tests
// point it at a fake tree). Unreadable items are left empty: facts inform,
// they do not gate provisioning.
func CollectFacts(root string) HardwareFacts {
	if root == "" {
		root = "/"
	}
	p := func(rel string) string { return filepath.Join(root, rel) }
	f := HardwareFacts{Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	f.Hostname = readTrim(p("proc/sys/kernel/hostname"))
	f.Kernel = readTrim(p("proc/sys/kernel/osrelease"))
	if b, err := os.ReadFile(p("etc/os-release")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
				f.OS = strings.Trim(v, `"'`)
			}
		}
	}
	if b, err := os.ReadFile(p("proc/cpuinfo")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			k = strings.TrimSpace(k)
			if ok && (k == "model name" || k == "Hardware" || k == "Model") && f.CPUModel == "" {
				f.CPUModel = strings.TrimSpace(v)
			}
		}
	}
	for _, k := range dmiFields {
		if v := readTrim(p("sys/class/dmi/id/" + k)); v != "" {
			if f.DMI == nil {
				f.DMI = map[string]string{}
			}
			f.DMI[k] = v
		}
	}
	return f
}

// Registration is what a device asks the hub to register, signed by the
// key it registers.
type Registration struct {
	V int `json:"v"`
	// HubURL is the hub the device means to join (the link's hub): the
	// signature binds the registration to it.
	HubURL string `json:"hub_url"`
	// Token is the claim token.
	Token    string `json:"token"`
	DeviceID string `json:"device_id"`
	// SiteID, when set, is the site the technician expects; the hub
	// refuses a token for another site.
	SiteID    string `json:"site_id,omitempty"`
	KeyAlg    Alg    `json:"key_alg"`
	PublicKey string `json:"public_key"` // PKIX PEM
	// Nonce and Time make every registration unique and fresh.
	Nonce  string          `json:"nonce"`
	Time   time.Time       `json:"time"`
	Camera *CameraIdentity `json:"camera,omitempty"`
	Facts  HardwareFacts   `json:"facts"`
}

// SignedJSON is a JSON document with a device signature over
// domain || document; the document travels as the exact bytes signed.
type SignedJSON struct {
	KID       string `json:"kid"`
	Payload   []byte `json:"payload"`
	Signature []byte `json:"signature"`
}

// Signature domains: a signature made for one purpose never verifies for
// another (nor as an envelope, whose COSE structure differs).
const (
	RegistrationDomain = "glint-provision/v1\x00"
	ReportDomain       = "glint-provision-report/v1\x00"
)

// SignJSON marshals v and signs it with key under domain.
func SignJSON(key Signer, domain string, v any) (*SignedJSON, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	sig, err := key.SignMessage(append([]byte(domain), b...))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return &SignedJSON{KID: key.KeyID(), Payload: b, Signature: sig}, nil
}

// Verify checks the signature with pub under domain and that KID is pub's.
func (s *SignedJSON) Verify(pub PublicKey, domain string) error {
	if s.KID != pub.KeyID() {
		return fmt.Errorf("%w: kid %q is not the key's %q", ErrSignature, s.KID, pub.KeyID())
	}
	if !pub.Verify(append([]byte(domain), s.Payload...), s.Signature) {
		return ErrSignature
	}
	return nil
}

// ErrSignature: a signed document does not verify.
var ErrSignature = errors.New("signature invalid")

// ErrRegistration is wrapped by every refusal of VerifyRegistration.
var ErrRegistration = errors.New("invalid registration")

// NewRegistration fills the key, nonce and time of a registration.
func NewRegistration(key Signer, hubURL, token, deviceID, siteID string, now time.Time) (*Registration, error) {
	pemKey, err := key.PublicKey().MarshalPEM()
	if err != nil {
		return nil, err
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	return &Registration{V: 1, HubURL: hubURL, Token: token, DeviceID: deviceID, SiteID: siteID,
		KeyAlg: key.Algorithm(), PublicKey: string(pemKey), Nonce: hex.EncodeToString(nonce[:]), Time: now.UTC()}, nil
}

// VerifyRegistration decodes a signed registration (strictly: unknown
// fields are refused), checks that it is signed by the key it registers
// and that its time is within maxSkew of now.
func VerifyRegistration(s *SignedJSON, now time.Time, maxSkew time.Duration) (*Registration, PublicKey, error) {
	var r Registration
	dec := json.NewDecoder(bytes.NewReader(s.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, PublicKey{}, fmt.Errorf("%w: %v", ErrRegistration, err)
	}
	if dec.More() {
		return nil, PublicKey{}, fmt.Errorf("%w: trailing data", ErrRegistration)
	}
	if r.V != 1 {
		return nil, PublicKey{}, fmt.Errorf("%w: version %d", ErrRegistration, r.V)
	}
	pub, err := ParsePublicKey([]byte(r.PublicKey))
	if err != nil {
		return nil, PublicKey{}, fmt.Errorf("%w: %v", ErrRegistration, err)
	}
	if pub.Alg != r.KeyAlg {
		return nil, PublicKey{}, fmt.Errorf("%w: key_alg %q but the key is %s", ErrRegistration, r.KeyAlg, pub.Alg)
	}
	if err := s.Verify(pub, RegistrationDomain); err != nil {
		return nil, PublicKey{}, fmt.Errorf("%w: proof of possession: %v", ErrRegistration, err)
	}
	if d := now.Sub(r.Time); d > maxSkew || d < -maxSkew {
		return nil, PublicKey{}, fmt.Errorf("%w: time %s is %s off the hub's clock (max %s)", ErrRegistration, r.Time.Format(time.RFC3339), d.Round(time.Second), maxSkew)
	}
	if len(r.Nonce) < 16 {
		return nil, PublicKey{}, fmt.Errorf("%w: nonce missing", ErrRegistration)
	}
	return &r, pub, nil
}

// MQTTSettings is how the provisioned device reaches the broker.
type MQTTSettings struct {
	BrokerURL string `json:"broker_url"`
	Prefix    string `json:"prefix"`
	// Auth is "token" (the embedded broker checks a token signed with the
	// device key: nothing secret is handed over) or "password" (Mosquitto,
	// EMQX: Password is the device's broker secret, sent once).
	Auth     string `json:"auth"`
	Username string `json:"username"`
	Password string `json:"password,omitempty"`
}

// ProvisionResponse is the hub's answer to a registration.
type ProvisionResponse struct {
	DeviceID string `json:"device_id"`
	SiteID   string `json:"site_id"`
	KID      string `json:"kid"`
	TokenID  string `json:"token_id"`
	// MQTT settings, the site's policy (JSON, opaque here) and the hub's
	// receipt-signing public key (PEM) the device pins.
	MQTT         MQTTSettings    `json:"mqtt"`
	Policy       json.RawMessage `json:"policy"`
	HubPublicKey string          `json:"hub_public_key"`
	HubKID       string          `json:"hub_kid"`
	// BrokerCA is the CA of an ssl:// broker (PEM) and BrokerCASHA256 the
	// hex SHA-256 of its DER, the fingerprint the device pins.
	BrokerCA       string `json:"broker_ca,omitempty"`
	BrokerCASHA256 string `json:"broker_ca_sha256,omitempty"`
}

// ProvisionError is the hub's JSON error body; Code is stable
// (token_unknown, token_used, token_expired, token_site, conflict,
// invalid_registration, bad_request).
type ProvisionError struct {
	Code    string `json:"code"`
	Message string `json:"error"`
}

// defaultDeviceID derives a device ID from the key: "glint-" and the
// first 12 hex digits of the kid (stable for the key, unique in a fleet).
func defaultDeviceID(key Signer) string { return "glint-" + key.KeyID()[:12] }

// readTrim reads a small text file without surrounding white space (""
// when unreadable).
func readTrim(path string) string { return strings.TrimSpace(readString(path)) }
