package fleetsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/glintdev/glint/device"
)

// APIRegistrar registers devices through glint-hub's HTTP API.
type APIRegistrar struct {
	// BaseURL is e.g. http://127.0.0.1:8780.
	BaseURL string
	APIKey  string
	Client  *http.Client
}

func (a *APIRegistrar) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.APIKey)
	req.Header.Set("Content-Type", "application/json")
	c := a.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Register implements Registrar.
func (a *APIRegistrar) Register(ctx context.Context, deviceID, siteID string, key *device.Key) error {
	p, err := device.PublicKeyPEM(key.Public())
	if err != nil {
		return err
	}
	return a.do(ctx, "POST", "/api/v1/devices", map[string]string{"device_id": deviceID, "site_id": siteID, "public_key": string(p)}, nil)
}

// HubPublicKey fetches the hub's receipt key from the API.
func (a *APIRegistrar) HubPublicKey(ctx context.Context) ([]byte, error) {
	var out struct {
		PublicKey string `json:"public_key"`
	}
	if err := a.do(ctx, "GET", "/api/v1/hub", nil, &out); err != nil {
		return nil, err
	}
	pub, err := device.ParsePublicKeyPEM([]byte(out.PublicKey))
	if err != nil {
		return nil, err
	}
	return pub, nil
}
