package device

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glintdev/glint/internal/fsutil"
)

// Files provisioning writes into the state directory, all mode 0600.
const (
	// ProvisionEnvFile holds glintd's sync settings as GLINT_… environment
	// overrides (systemd: EnvironmentFile=-/var/lib/glint/sync.env).
	ProvisionEnvFile = "sync.env"
	// ProvisionFile is the hub's answer without the broker secret.
	ProvisionFile = "provision.json"
	// HubKeyPEMFile is the hub's receipt public key the device pins.
	HubKeyPEMFile = "hub.pub"
	// BrokerCAFile is the broker CA (ssl:// brokers).
	BrokerCAFile = "broker-ca.pem"
	// BrokerSecretFile is the broker password (auth: password).
	BrokerSecretFile = "broker.secret"
	// SelfTestFile and SelfTestSummaryFile are the self-test report, as
	// JSON and as text for the technician.
	SelfTestFile        = "selftest.json"
	SelfTestSummaryFile = "selftest.txt"
)

// ErrProvisionRefused is wrapped when the hub refused the registration (a
// ProvisionRefusal tells why).
var ErrProvisionRefused = errors.New("hub refused provisioning")

// ProvisionRefusal is a refusal by the hub.
type ProvisionRefusal struct {
	Status int
	ProvisionError
}

func (e *ProvisionRefusal) Error() string {
	return fmt.Sprintf("%v: %s (%s, HTTP %d)", ErrProvisionRefused, e.Message, e.Code, e.Status)
}

func (e *ProvisionRefusal) Unwrap() error { return ErrProvisionRefused }

// ProvisionClient talks to the hub's provisioning endpoints.
type ProvisionClient struct {
	Link ProvisionLink
	HTTP *http.Client
}

// NewProvisionClient checks the link and builds an HTTP client that, when
// the link pins a CA fingerprint, trusts only a chain to that certificate.
func NewProvisionClient(l ProvisionLink) (*ProvisionClient, error) {
	if err := l.Check(); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if l.CAFingerprint != "" {
		u, _ := url.Parse(l.Hub)
		if u.Scheme != "https" {
			return nil, errors.New("provisioning: a CA fingerprint needs an https:// hub")
		}
		tr.TLSClientConfig = pinnedTLS(l.CAFingerprint, u.Hostname())
	}
	return &ProvisionClient{Link: l, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// pinnedTLS verifies the server chain against the one certificate whose
// SHA-256 is fp (the system roots are not consulted).
func pinnedTLS(fp, host string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification happens below, against the pinned certificate only.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			var certs []*x509.Certificate
			roots, inter := x509.NewCertPool(), x509.NewCertPool()
			pinned := false
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs = append(certs, c)
				sum := sha256.Sum256(r)
				if hex.EncodeToString(sum[:]) == strings.ToLower(fp) {
					roots.AddCert(c)
					pinned = true
				} else {
					inter.AddCert(c)
				}
			}
			if !pinned || len(certs) == 0 {
				return errors.New("provisioning: the hub's certificate chain does not contain the pinned CA")
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host})
			return err
		},
	}
}

func (c *ProvisionClient) post(ctx context.Context, path string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.Link.Hub, "/")+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	rsp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	defer rsp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(rsp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("provisioning: read answer: %w", err)
	}
	if rsp.StatusCode/100 != 2 {
		ref := &ProvisionRefusal{Status: rsp.StatusCode}
		if json.Unmarshal(data, &ref.ProvisionError) != nil || ref.Message == "" {
			ref.Code, ref.Message = "http", strings.TrimSpace(string(data))
		}
		return ref
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("provisioning: answer: %w", err)
		}
	}
	return nil
}

// Register signs a registration with key and sends it; on success the
// device is registered and the answer holds its settings.
func (c *ProvisionClient) Register(ctx context.Context, key Signer, deviceID, siteID string, camera *CameraIdentity, facts HardwareFacts) (*ProvisionResponse, error) {
	if deviceID == "" {
		deviceID = defaultDeviceID(key)
	}
	reg, err := NewRegistration(key, c.Link.Hub, c.Link.Token, deviceID, siteID, time.Now())
	if err != nil {
		return nil, err
	}
	reg.Camera, reg.Facts = camera, facts
	signed, err := SignJSON(key, RegistrationDomain, reg)
	if err != nil {
		return nil, err
	}
	var rsp ProvisionResponse
	if err := c.post(ctx, "/api/v1/provision", signed, &rsp); err != nil {
		return nil, err
	}
	if rsp.DeviceID != deviceID || rsp.KID != key.KeyID() {
		return nil, fmt.Errorf("provisioning: the hub registered %q/%s, not %q/%s", rsp.DeviceID, rsp.KID, deviceID, key.KeyID())
	}
	if err := rsp.check(); err != nil {
		return nil, err
	}
	return &rsp, nil
}

// check validates what will be written and pinned.
func (r *ProvisionResponse) check() error {
	hub, err := ParsePublicKey([]byte(r.HubPublicKey))
	if err != nil {
		return fmt.Errorf("provisioning: hub key: %w", err)
	}
	if hub.Alg != AlgEdDSA || hub.KeyID() != r.HubKID {
		return errors.New("provisioning: hub key does not match its kid")
	}
	if r.MQTT.BrokerURL == "" || r.MQTT.Prefix == "" {
		return errors.New("provisioning: the hub sent no broker settings")
	}
	if r.BrokerCA != "" {
		der, err := firstCertDER([]byte(r.BrokerCA))
		if err != nil {
			return fmt.Errorf("provisioning: broker CA: %w", err)
		}
		sum := sha256.Sum256(der)
		if hex.EncodeToString(sum[:]) != strings.ToLower(r.BrokerCASHA256) {
			return errors.New("provisioning: broker CA does not match its fingerprint")
		}
	}
	return nil
}

func firstCertDER(pemBytes []byte) ([]byte, error) {
	for {
		var blk *pem.Block
		blk, pemBytes = pem.Decode(pemBytes)
		if blk == nil {
			return nil, errors.New("no certificate")
		}
		if blk.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
				return nil, err
			}
			return blk.Bytes, nil
		}
	}
}

// PostReport signs the self-test report with key and sends it to the hub
// (POST /api/v1/provision/report): over HTTPS like the registration, so it
// arrives even while the broker does not yet know the new device's
// password (a Mosquitto fleet reloads its password file later).
func (c *ProvisionClient) PostReport(ctx context.Context, key Signer, rep *SelfTestReport) error {
	signed, err := SignJSON(key, ReportDomain, rep)
	if err != nil {
		return err
	}
	return c.post(ctx, "/api/v1/provision/report", signed, nil)
}

// WriteProvisioned writes the hub's answer into stateDir (0600 files,
// each written to a temporary file, synced and renamed): hub.pub,
// broker-ca.pem and broker.secret when given, provision.json (the answer
// without the secret) and sync.env, the GLINT_… overrides that make glintd
// use them. tpmPath is recorded in sync.env when the key is in a TPM. It
// returns the paths written.
func WriteProvisioned(stateDir string, r *ProvisionResponse, tpmPath string, camera *CameraIdentity) ([]string, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	env := [][2]string{
		{"GLINT_SYNC_DEVICE_ID", r.DeviceID},
		{"GLINT_SYNC_SITE_ID", r.SiteID},
		{"GLINT_SYNC_BROKER_URL", r.MQTT.BrokerURL},
		{"GLINT_SYNC_PREFIX", r.MQTT.Prefix},
		{"GLINT_SYNC_AUTH", r.MQTT.Auth},
		{"GLINT_SYNC_HUB_KEY_FILE", filepath.Join(abs, HubKeyPEMFile)},
	}
	files := []struct {
		name string
		data []byte
	}{{HubKeyPEMFile, []byte(r.HubPublicKey)}}
	if r.BrokerCA != "" {
		files = append(files, struct {
			name string
			data []byte
		}{BrokerCAFile, []byte(r.BrokerCA)})
		env = append(env, [2]string{"GLINT_SYNC_CA_FILE", filepath.Join(abs, BrokerCAFile)})
	}
	if r.MQTT.Password != "" {
		files = append(files, struct {
			name string
			data []byte
		}{BrokerSecretFile, []byte(r.MQTT.Password + "\n")})
		env = append(env, [2]string{"GLINT_SYNC_PASSWORD_FILE", filepath.Join(abs, BrokerSecretFile)})
	}
	if tpmPath != "" {
		env = append(env, [2]string{"GLINT_SYNC_TPM_DEVICE", tpmPath})
	}
	if camera != nil && (camera.VendorID != "" || camera.ProductID != "" || camera.Serial != "") {
		env = append(env,
			[2]string{"GLINT_GUARD_PINNED_CAMERA_VENDOR_ID", camera.VendorID},
			[2]string{"GLINT_GUARD_PINNED_CAMERA_PRODUCT_ID", camera.ProductID},
			[2]string{"GLINT_GUARD_PINNED_CAMERA_SERIAL", camera.Serial})
	}
	var eb strings.Builder
	eb.WriteString("# Written by glint provisioning: glintd's sync settings as environment\n# overrides (systemd EnvironmentFile=). Do not edit; provision again instead.\n")
	for _, kv := range env {
		if strings.ContainsAny(kv[1], "\n\r\x00") {
			return nil, fmt.Errorf("provisioning: %s contains a line break", kv[0])
		}
		fmt.Fprintf(&eb, "%s=%s\n", kv[0], envQuote(kv[1]))
	}
	pub := *r
	pub.MQTT.Password = ""
	js, err := json.MarshalIndent(&pub, "", "  ")
	if err != nil {
		return nil, err
	}
	files = append(files, struct {
		name string
		data []byte
	}{ProvisionFile, append(js, '\n')}, struct {
		name string
		data []byte
	}{ProvisionEnvFile, []byte(eb.String())})
	var written []string
	for _, f := range files {
		p := filepath.Join(abs, f.name)
		if err := fsutil.WriteFileAtomic(p, f.data, 0o600); err != nil {
			return written, err
		}
		written = append(written, p)
	}
	return written, nil
}

// envQuote double-quotes a value for a systemd environment file when it
// holds anything but safe characters.
func envQuote(v string) string {
	if v != "" && strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./:@+=,") == "" {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(v) + `"`
}

// ReadEnvFile reads an environment file as WriteProvisioned writes it
// (KEY=value lines, values optionally double-quoted with backslash
// escapes; # comments).
func ReadEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: no '='", path, i+1)
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			var sb strings.Builder
			for j := 1; j < len(v)-1; j++ {
				if v[j] == '\\' && j+1 < len(v)-1 {
					j++
				}
				sb.WriteByte(v[j])
			}
			v = sb.String()
		}
		out[k] = v
	}
	return out, nil
}
