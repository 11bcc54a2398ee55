package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/internal/testenv"
	"github.com/glintdev/glint/session"
)

// requireArtefact fails under CI=true, and skips (saying so) elsewhere,
// when make deps has not produced path.
func requireArtefact(t testing.TB, path, what string) string {
	t.Helper()
	return testenv.Require(t, path, what)
}

// portraitCrop cuts the square (x, y, side) out of a photo and scales it to
// size x size (bilinear): an enrolment portrait with the eyes far enough
// apart.
func portraitCrop(t testing.TB, path string, x, y, side, size int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	dst := image.NewRGBA(image.Rect(0, 0, size, size))
	s := float64(side) / float64(size)
	for j := 0; j < size; j++ {
		for i := 0; i < size; i++ {
			fx, fy := float64(x)+(float64(i)+0.5)*s-0.5, float64(y)+(float64(j)+0.5)*s-0.5
			x0, y0 := int(fx), int(fy)
			ax, ay := fx-float64(x0), fy-float64(y0)
			var acc [3]float64
			for _, c := range [4]struct {
				dx, dy int
				w      float64
			}{{0, 0, (1 - ax) * (1 - ay)}, {1, 0, ax * (1 - ay)}, {0, 1, (1 - ax) * ay}, {1, 1, ax * ay}} {
				r, g, b, _ := src.At(x0+c.dx, y0+c.dy).RGBA()
				acc[0] += c.w * float64(r>>8)
				acc[1] += c.w * float64(g>>8)
				acc[2] += c.w * float64(b>>8)
			}
			o := dst.PixOffset(i, j)
			dst.Pix[o], dst.Pix[o+1], dst.Pix[o+2], dst.Pix[o+3] = uint8(acc[0]+0.5), uint8(acc[1]+0.5), uint8(acc[2]+0.5), 255
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, dst); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// demo is glintd running as `make run` runs it: the simulated camera and
// screen, the real models, the enrolment store, the kiosk API on a socket.
type demo struct {
	t      testing.TB
	cfg    Config
	logs   *syncBuffer
	client *http.Client
	stop   func()
	ref    string
	photo  string
}

// startDemo starts glintd with the simulated camera at w x h and fps.
func startDemo(t testing.TB, w, h int, fps float64) *demo {
	t.Helper()
	t.Setenv("NOTIFY_SOCKET", "")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	requireArtefact(t, filepath.Join(root, "models", "lib", runtime.GOARCH, inference.LibraryName), "ONNX Runtime library")
	requireArtefact(t, filepath.Join(root, "models", "manifest.json"), "models")
	photo := requireArtefact(t, filepath.Join(root, ".cache", "faces", "skimage", "astronaut.png"), "registry face photos")

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "enrolment.key")
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.API.Socket = filepath.Join(dir, "glintd.sock")
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Camera.Source, cfg.Camera.Width, cfg.Camera.Height, cfg.Camera.FPS = "sim", w, h, fps
	cfg.Camera.Sim.Face = photo
	cfg.Models.Dir = filepath.Join(root, "models")
	cfg.Enrolment.KeyFile = keyFile
	cfg.Guard.Severity = map[string]string{"VIRTUAL_MACHINE": "warn"} // test machines may be VMs
	cfg.Session.PositioningTimeout = 10 * time.Second
	cfg.Service.ShutdownTimeout = 20 * time.Second

	d := &demo{t: t, cfg: cfg, logs: &syncBuffer{}, photo: photo}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runDaemon(ctx, cfg, slog.New(slog.NewTextHandler(d.logs, nil))) }()
	d.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("glintd: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("glintd did not stop")
		}
	}
	d.client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", cfg.API.Socket)
	}}}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(d.logs.String(), "camera streaming") {
		if time.Now().After(deadline) {
			d.stop()
			t.Fatalf("not streaming:\n%s", d.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

func (d *demo) call(method, path, ctype string, body []byte, out any) int {
	t := d.t
	t.Helper()
	req, err := http.NewRequest(method, "http://glintd"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %d: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

// enrol enrols the astronaut (a crop with the eyes ~100 px apart).
func (d *demo) enrol() {
	t := d.t
	t.Helper()
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("subject", "astronaut")
	pw, _ := mw.CreateFormFile("portrait", "portrait.png")
	_, _ = pw.Write(portraitCrop(t, d.photo, 125, 26, 200, 480))
	_ = mw.Close()
	var enr session.Enrolment
	if code := d.call("POST", "/v1/enrollments", mw.FormDataContentType(), form.Bytes(), &enr); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("enrol: %d %+v", code, enr)
	}
	d.ref = enr.ReferenceID
}

// verify runs one session with species in front of the camera and returns
// the verdict told over server-sent events.
func (d *demo) verify(species string) session.Verdict {
	t := d.t
	t.Helper()
	body, _ := json.Marshal(map[string]string{"species": species})
	if code := d.call("POST", "/v1/sim/presentation", "application/json", body, nil); code/100 != 2 {
		t.Fatalf("presentation %s: %d", species, code)
	}
	body, _ = json.Marshal(session.Request{Subject: "astronaut", ReferenceID: d.ref})
	var tk session.Ticket
	if code := d.call("POST", "/v1/sessions", "application/json", body, &tk); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	body, _ = json.Marshal(map[string]string{"token": tk.Token})
	if code := d.call("POST", "/v1/sessions/"+tk.ID+"/start", "application/json", body, nil); code != http.StatusAccepted {
		t.Fatalf("start: %d", code)
	}
	// A second start with the same token: gone.
	if code := d.call("POST", "/v1/sessions/"+tk.ID+"/start", "application/json", body, nil); code != http.StatusGone {
		t.Errorf("reused token: %d, want 410", code)
	}
	req, _ := http.NewRequest("GET", "http://glintd/v1/sessions/"+tk.ID+"/events", nil)
	ectx, ecancel := context.WithTimeout(context.Background(), time.Minute)
	defer ecancel()
	resp, err := d.client.Do(req.WithContext(ectx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var ev session.Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event %q: %v", data, err)
		}
		if ev.Type == session.EventVerdict {
			if ev.Verdict.Status == "Not Finished" {
				for _, l := range strings.Split(d.logs.String(), "\n") {
					if strings.Contains(l, "session not finished") {
						t.Log(l)
					}
				}
			}
			return *ev.Verdict
		}
	}
	t.Fatalf("no verdict (%v):\n%s", sc.Err(), d.logs.String())
	return session.Verdict{}
}

// TestDaemonSimSessions runs glintd as `make run` does: an enrolment
// through the kiosk API, then a bona fide session and a print attack, each
// told over server-sent events.
func TestDaemonSimSessions(t *testing.T) {
	// 320x240 at 15 fps: the simulator renders in real time even under the
	// race detector on a loaded 2-core machine (the face is still 28 % of
	// the frame width, inside the short-range detector's range).
	d := startDemo(t, 320, 240, 15)
	defer d.stop()
	d.enrol()
	if v := d.verify("bona_fide"); v.Status != "Approved" || v.ResultID == "" {
		t.Errorf("bona fide: %+v", v)
	}
	if v := d.verify("print"); v.Status != "Declined" || !strings.Contains(fmt.Sprint(v.Reasons), "liveness_low") {
		t.Errorf("print: %+v", v)
	}
}

// procStatusKB reads a /proc/self/status field in kB.
func procStatusKB(t testing.TB, field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			var kb float64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb); err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("%s not in /proc/self/status", field)
	return 0
}

// BenchmarkDaemonRSS reports glintd's resident memory with the models
// loaded (both engines, the enrolment store, the simulated camera
// streaming): rss_idle_mb once streaming, rss_mb and rss_peak_mb (VmHWM)
// after b.N live sessions (bona fide, print, replay in turn). It runs the
// daemon inside the test binary, so the figures include the test
// harness's few MB.
func BenchmarkDaemonRSS(b *testing.B) {
	d := startDemo(b, 640, 480, 30) // configs/demo.yaml
	defer d.stop()
	time.Sleep(2 * time.Second)
	idle := procStatusKB(b, "VmRSS")
	d.enrol()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.verify([]string{"bona_fide", "print", "replay"}[i%3])
	}
	b.StopTimer()
	b.ReportMetric(idle/1024, "rss_idle_mb")
	b.ReportMetric(procStatusKB(b, "VmRSS")/1024, "rss_mb")
	b.ReportMetric(procStatusKB(b, "VmHWM")/1024, "rss_peak_mb")
}
