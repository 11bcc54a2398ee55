// Package testsvc lets tests find the real services they run against
// (Mosquitto on 127.0.0.1:1883, PostgreSQL on 127.0.0.1:5432) and fail
// loudly when one is missing in CI (CI=true) rather than skip: a skipped
// integration test there would hide a broken environment.
package testsvc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Well-known local services.
const (
	MosquittoAddr = "127.0.0.1:1883"
	PostgresAddr  = "127.0.0.1:5432"
)

// Require checks that something listens on addr; when not, the test fails
// under CI=true and is skipped otherwise.
func Require(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return
	}
	msg := fmt.Sprintf("%s not reachable at %s: %v (start it, e.g. `mosquitto -d -c /etc/mosquitto/mosquitto.conf` or `service postgresql start`)", name, addr, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// RequireBinary returns the path of an executable, failing under CI=true
// and skipping otherwise when it is missing.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin/", "/usr/bin/"} {
		if p, err := exec.LookPath(dir + name); err == nil {
			return p
		}
	}
	msg := name + " not installed (scripts/deps.sh installs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitListen waits until addr accepts connections.
func WaitListen(t testing.TB, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s after %s", addr, d)
}

// UniqueName returns a name safe for topics and SQL schemas, unique per
// test run.
func UniqueName(prefix string) string {
	return strings.ToLower(fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano()%1e9))
}
