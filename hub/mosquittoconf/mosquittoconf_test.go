package mosquittoconf_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/mosquittoconf"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/hub/store/storetest"
	"github.com/glintdev/glint/sync/testsvc"
)

// TestCheckPasswordMosquittoPasswd: a hash written by the real
// mosquitto_passwd verifies with the right password only, and so does one
// of ours.
func TestCheckPasswordMosquittoPasswd(t *testing.T) {
	bin := testsvc.RequireBinary(t, "mosquitto_passwd")
	f := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command(bin, "-c", "-b", f, "dev-a", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	b, _ := os.ReadFile(f)
	h := strings.TrimPrefix(strings.TrimSpace(string(b)), "dev-a:")
	if !strings.HasPrefix(h, "$7$") {
		t.Fatalf("mosquitto_passwd wrote %q", b)
	}
	ours, err := mosquittoconf.HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	for _, hash := range []string{h, ours} {
		if ok, err := mosquittoconf.CheckPassword(hash, "s3cret"); !ok || err != nil {
			t.Errorf("%s: right password refused (%v)", hash, err)
		}
		if ok, _ := mosquittoconf.CheckPassword(hash, "s3creT"); ok {
			t.Errorf("%s: wrong password accepted", hash)
		}
	}
	for _, bad := range []string{"", "$6$x$y", "$7$abc$AAAA$AAAA", "$7$101$!!$AAAA"} {
		if _, err := mosquittoconf.CheckPassword(bad, "x"); !errors.Is(err, mosquittoconf.ErrBadHash) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestValidUsername(t *testing.T) {
	for s, want := range map[string]bool{"kiosk-01": true, "gate_7.site": true, "": false, "a:b": false, "a/b": false,
		"a+": false, "a#": false, "a b": false, "a\n": false, "$SYS": false} {
		if got := mosquittoconf.ValidUsername(s); got != want {
			t.Errorf("%q: %v", s, got)
		}
	}
}

func register(t *testing.T, s *store.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		k, _ := device.GenerateKey()
		if _, err := s.RegisterDevice(context.Background(), id, "site", k.Public()); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGenerate: secrets are issued once, re-running changes nothing,
// rotation replaces one device's secret only, revoked devices are left out,
// and files have their modes; on both store engines.
func TestGenerate(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			s := storetest.Open(t, d)
			register(t, s, "dev-a", "dev-b", "dev-c")
			if err := s.RevokeDevice(ctx, "dev-c"); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "out")
			o := mosquittoconf.Options{Dir: dir, Prefix: "glint/v1"}
			sum, err := mosquittoconf.Generate(ctx, s, o)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Devices != 2 || sum.Revoked != 1 || !slices.Equal(sum.NewSecrets, []string{"glint-hub", "dev-a", "dev-b"}) {
				t.Fatalf("summary %+v", sum)
			}
			for p, mode := range map[string]os.FileMode{dir: 0o750 | os.ModeDir, sum.CredentialsDir: 0o700 | os.ModeDir,
				sum.ACLFile: 0o640, sum.PasswordFile: 0o640, sum.ConfFile: 0o640, filepath.Join(sum.CredentialsDir, "dev-a.secret"): 0o600} {
				if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
					t.Errorf("%s: %v %v, want %v", p, fi.Mode(), err, mode)
				}
			}
			pw1 := readFile(t, sum.PasswordFile)
			secretA := strings.TrimSpace(readFile(t, filepath.Join(sum.CredentialsDir, "dev-a.secret")))
			if len(secretA) < 22 { // ≥ 128 bits in base64
				t.Fatalf("secret %q too short", secretA)
			}
			lines := strings.Split(strings.TrimSpace(pw1), "\n")
			if len(lines) != 3 || strings.Contains(pw1, "dev-c") || strings.Contains(pw1, secretA) {
				t.Fatalf("password file:\n%s", pw1)
			}
			hashA := strings.TrimPrefix(lines[1], "dev-a:")
			if ok, err := mosquittoconf.CheckPassword(hashA, secretA); !ok || err != nil {
				t.Fatalf("dev-a's hash does not match its secret file: %v", err)
			}
			acl := readFile(t, sum.ACLFile)
			for _, want := range []string{"pattern write glint/v1/%u/result\n", "pattern read glint/v1/%u/receipt\n", "user glint-hub\n", "topic write glint/v1/+/receipt\n"} {
				if !strings.Contains(acl, want) {
					t.Errorf("ACL lacks %q:\n%s", want, acl)
				}
			}
			if strings.Contains(acl, "readwrite") {
				t.Errorf("ACL grants readwrite:\n%s", acl)
			}

			// Again: nothing new, the same password file.
			os.Remove(filepath.Join(sum.CredentialsDir, "dev-a.secret"))
			register(t, s, "dev-d")
			sum2, err := mosquittoconf.Generate(ctx, s, o)
			if err != nil {
				t.Fatal(err)
			}
			pw2 := readFile(t, sum2.PasswordFile)
			if !slices.Equal(sum2.NewSecrets, []string{"dev-d"}) || !strings.HasPrefix(pw2, pw1) {
				t.Fatalf("second run: %+v\n%s\nthen\n%s", sum2, pw1, pw2)
			}
			if _, err := os.Stat(filepath.Join(sum.CredentialsDir, "dev-a.secret")); !os.IsNotExist(err) {
				t.Fatal("dev-a's secret written again")
			}

			// Rotate dev-b: a new secret and hash for it alone.
			o.Rotate = []string{"dev-b"}
			sum3, err := mosquittoconf.Generate(ctx, s, o)
			if err != nil {
				t.Fatal(err)
			}
			pw3 := readFile(t, sum3.PasswordFile)
			if !slices.Equal(sum3.NewSecrets, []string{"dev-b"}) || pw3 == pw2 || !strings.Contains(pw3, lines[1]) {
				t.Fatalf("rotate: %+v\n%s", sum3, pw3)
			}
			o.Rotate = []string{"dev-c"}
			if _, err := mosquittoconf.Generate(ctx, s, o); !errors.Is(err, mosquittoconf.ErrInvalid) {
				t.Fatalf("rotating a revoked device: %v", err)
			}

			// A configured hub password is hashed, not generated.
			o.Rotate, o.HubPassword = nil, "hub-password-from-config"
			sum4, err := mosquittoconf.Generate(ctx, s, o)
			if err != nil || len(sum4.NewSecrets) != 0 {
				t.Fatalf("%+v %v", sum4, err)
			}
			h, _ := s.BrokerCredential(ctx, "glint-hub")
			if ok, _ := mosquittoconf.CheckPassword(h, "hub-password-from-config"); !ok {
				t.Fatal("hub password from the configuration not stored")
			}
		})
	}
}

func TestGenerateErrors(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t, store.SQLite)
	register(t, s, "glint-hub")
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for name, o := range map[string]mosquittoconf.Options{
		"dir under a file": {Dir: filepath.Join(file, "out"), Prefix: "glint/v1", HubUser: "hub"},
		"bad prefix":       {Dir: t.TempDir(), Prefix: "glint/#", HubUser: "hub"},
		"cert without key": {Dir: t.TempDir(), Prefix: "glint/v1", HubUser: "hub", CertFile: "c.pem"},
		"hub user taken":   {Dir: t.TempDir(), Prefix: "glint/v1"},
	} {
		if _, err := mosquittoconf.Generate(ctx, s, o); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// Nothing was issued by the failed runs.
	if c, _ := s.BrokerCredentials(ctx); len(c) != 0 {
		t.Fatalf("credentials stored by failed runs: %v", c)
	}
}
