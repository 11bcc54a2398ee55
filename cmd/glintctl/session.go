package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/session"
)

// glintctl session and enrol drive glintd's local kiosk API
// (docs/kiosk-api.md) from a shell, over the unix socket or the loopback
// TCP listener with its bearer token.

// Exit statuses of glintctl session start and enrol.
const (
	exitApproved = 0 // session: Approved; enrol: enrolled
	exitRefused  = 1 // session: any other verdict; enrol: portrait refused
)

// defaultSocket is where the packaged glintd serves its API.
const defaultSocket = "/run/glint/glintd.sock"

// apiFlags select how to reach glintd.
type apiFlags struct {
	socket, url, tokenFile string
}

func (f *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.socket, "socket", defaultSocket, "glintd's unix socket")
	fs.StringVar(&f.url, "url", "", "glintd's loopback TCP address instead of the socket, e.g. http://127.0.0.1:8787 (needs --token-file)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the TCP bearer token (api.token_file)")
}

// kioskClient talks to glintd's kiosk API.
type kioskClient struct {
	base  string
	token string
	http  *http.Client
}

func (f *apiFlags) client() (*kioskClient, error) {
	if f.url == "" {
		if f.tokenFile != "" {
			return nil, usageError{"--token-file goes with --url"}
		}
		sock := f.socket
		return &kioskClient{base: "http://glintd", http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}}, nil
	}
	if f.tokenFile == "" {
		return nil, usageError{"--url needs --token-file (the TCP listener requires the bearer token)"}
	}
	b, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("token file %s is empty", f.tokenFile)
	}
	return &kioskClient{base: strings.TrimRight(f.url, "/"), token: tok, http: &http.Client{}}, nil
}

// apiError is an error answer of the API.
type apiError struct {
	status int
	body   session.APIError
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("glintd: %d %s: %s", e.status, e.body.Code, e.body.Error)
	if e.body.Field != "" {
		s += " (field " + e.body.Field + ")"
	}
	return s
}

// do sends a request and decodes a JSON answer into out (when not nil);
// a status of 400 or more is an *apiError.
func (c *kioskClient) do(ctx context.Context, method, path, ctype string, body io.Reader, out any, hdr ...string) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("glintd: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("glintd: %w", err)
	}
	if resp.StatusCode >= 400 {
		e := &apiError{status: resp.StatusCode}
		if json.Unmarshal(b, &e.body) != nil || e.body.Code == "" {
			e.body = session.APIError{Error: strings.TrimSpace(string(b)), Code: http.StatusText(resp.StatusCode)}
		}
		return e
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("glintd: answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

func (c *kioskClient) postJSON(ctx context.Context, path string, in, out any, hdr ...string) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, "POST", path, "application/json", bytes.NewReader(b), out, hdr...)
}

// events streams a session's server-sent events after seq, calling fn for
// each; it returns when the stream ends (nil) or fails.
func (c *kioskClient) events(ctx context.Context, id string, after int, fn func(session.Event)) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/sessions/"+id+"/events", nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.Itoa(after))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("glintd: events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := &apiError{status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		json.Unmarshal(b, &e.body)
		return e
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) > 0 {
				var ev session.Event
				if err := json.Unmarshal(data, &ev); err != nil {
					return fmt.Errorf("glintd: event %q: %w", data, err)
				}
				fn(ev)
				data = data[:0]
			}
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("glintd: events: %w", err)
	}
	return nil
}

// present switches the simulated camera's presentation.
func (c *kioskClient) present(ctx context.Context, species, face string) error {
	p := struct {
		Species string `json:"species"`
		Face    string `json:"face,omitempty"`
	}{species, face}
	return c.postJSON(ctx, "/v1/sim/presentation", p, nil)
}

const sessionUsage = `usage:
  glintctl session start --subject S --reference R [--mode dynamic|express] [--level L]
      [--socket PATH | --url http://127.0.0.1:PORT --token-file F] [--json] [--timeout D]
      [--sim-presentation SPECIES [--sim-face PHOTO]]
                      run one verification: exit 0 Approved, 1 any other verdict, 2 error
  glintctl session present SPECIES [--face PHOTO] [--socket …]
                      simulated camera only: put bona_fide or an attack species in front of it
  glintctl session get ID [--socket …] print a session as JSON
  glintctl session cancel ID [--socket …]
`

// runSessionMain runs glintctl session and returns the exit status.
func runSessionMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	code, err := runSession(ctx, args, stdout, stderr)
	return exitStatus(code, err, exitUsage, sessionUsage, stderr)
}

func runSession(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		return exitUsage, usageError{"session: missing subcommand (start, get, cancel)"}
	}
	switch args[0] {
	case "start":
		return sessionStart(ctx, args[1:], stdout, stderr)
	case "present":
		fs := newFlagSet("session present", stderr)
		var af apiFlags
		af.register(fs)
		face := fs.String("face", "", "the face photo to show (default: the current one)")
		pos, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return exitUsage, err
		}
		if len(pos) != 1 {
			return exitUsage, usageError{"session present: want one species (bona_fide, print, screen, replay, injection, relight, mask)"}
		}
		c, err := af.client()
		if err != nil {
			return exitUsage, err
		}
		if err := c.present(ctx, pos[0], *face); err != nil {
			return exitUsage, err
		}
		fmt.Fprintf(stdout, "simulator: %s in front of the camera\n", pos[0])
		return 0, nil
	case "get", "cancel":
		return getOrDelete(ctx, "session", args, "session ID", "/v1/sessions/", "cancel", "session %s cancelled", &session.Info{}, stdout, stderr)
	}
	return exitUsage, usageError{fmt.Sprintf("session: unknown subcommand %q", args[0])}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// guidanceText is what glintctl says for each guidance code.
var guidanceText = map[session.Guidance]string{
	session.GuidanceNoFace:        "no face in view",
	session.GuidanceMultipleFaces: "more than one face in view",
	session.GuidanceTooFar:        "move closer",
	session.GuidanceTooClose:      "move back",
	session.GuidanceOffCenter:     "centre your face",
	session.GuidanceTooDark:       "too dark",
	session.GuidanceTooBright:     "too bright",
	session.GuidanceBacklit:       "light behind the face",
	session.GuidanceBlurry:        "hold still",
	session.GuidanceFaceOccluded:  "face covered",
	session.GuidanceLookAtScreen:  "look at the screen",
}

func sessionStart(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("session start", stderr)
	var af apiFlags
	af.register(fs)
	subject := fs.String("subject", "", "the caller's reference for the person (required)")
	ref := fs.String("reference", "", "the enrolment's reference_id to compare against (required)")
	mode := fs.String("mode", "", "dynamic (flash challenge) or express (passive); default: glintd's policy")
	level := fs.String("level", "", "liveness level LOOSE, STANDARD, STRICT (CLOSED: tests only); default: glintd's policy")
	asJSON := fs.Bool("json", false, "print the decided session as JSON instead of the progress lines")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up (and cancel the session) after this long")
	present := fs.String("sim-presentation", "", "simulated camera only: first put this in front of it (bona_fide or an attack species: print, screen, replay, injection, relight, mask)")
	face := fs.String("sim-face", "", "simulated camera only: with --sim-presentation, the face photo to show")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(pos) > 0 {
		return exitUsage, usageError{fmt.Sprintf("session start: unexpected argument %q", pos[0])}
	}
	if *subject == "" || *ref == "" {
		return exitUsage, usageError{"session start: --subject and --reference are required"}
	}
	c, err := af.client()
	if err != nil {
		return exitUsage, err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	say := func(format string, a ...any) {
		if !*asJSON {
			fmt.Fprintf(stdout, format+"\n", a...)
		}
	}

	if *present != "" {
		if err := c.present(ctx, *present, *face); err != nil {
			return exitUsage, err
		}
		say("simulator: %s in front of the camera", *present)
	} else if *face != "" {
		return exitUsage, usageError{"--sim-face goes with --sim-presentation"}
	}
	var tk session.Ticket
	req := session.Request{Subject: *subject, ReferenceID: *ref, Mode: result.Mode(*mode), Level: flashmark.Level(strings.ToUpper(*level))}
	if err := c.postJSON(ctx, "/v1/sessions", req, &tk); err != nil {
		return exitUsage, err
	}
	say("session %s created", tk.ID)
	var info session.Info
	if err := c.postJSON(ctx, "/v1/sessions/"+tk.ID+"/start", nil, &info, "X-Session-Token", tk.Token); err != nil {
		return exitUsage, err
	}

	// Follow the events until the verdict, reconnecting (resuming after
	// the last event seen) if the stream breaks.
	var verdict *session.Verdict
	last := 0
	lastGuidance := session.Guidance("")
	lastQuarter := -1
	for attempt := 0; verdict == nil; attempt++ {
		err := c.events(ctx, tk.ID, last, func(ev session.Event) {
			last = ev.Seq
			switch ev.Type {
			case session.EventState:
				say("state %s", ev.State)
			case session.EventGuidance:
				if ev.Guidance != lastGuidance && ev.Guidance != "" {
					say("guidance %s: %s", ev.Guidance, guidanceText[ev.Guidance])
				}
				lastGuidance = ev.Guidance
			case session.EventProgress:
				// A line per quarter of the challenge, not per step.
				if q := int(4 * ev.Progress); q > lastQuarter {
					say("progress %3.0f%%", 100*ev.Progress)
					lastQuarter = q
				}
			case session.EventVerdict:
				verdict = ev.Verdict
			}
		})
		if ctx.Err() != nil {
			// Interrupted or timed out: do not leave the session running.
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = c.do(cctx, "DELETE", "/v1/sessions/"+tk.ID, "", nil, nil)
			ccancel()
			return exitUsage, fmt.Errorf("session %s cancelled: %w", tk.ID, ctx.Err())
		}
		var ae *apiError
		if errors.As(err, &ae) {
			return exitUsage, err
		}
		if verdict == nil && attempt >= 5 {
			if err == nil {
				err = fmt.Errorf("session %s: the event stream ended without a verdict", tk.ID)
			}
			return exitUsage, err
		}
		if verdict == nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if *asJSON {
		if err := c.do(ctx, "GET", "/v1/sessions/"+tk.ID, "", nil, &info); err != nil {
			return exitUsage, err
		}
		if err := printJSON(stdout, info); err != nil {
			return exitUsage, err
		}
	} else {
		printVerdict(stdout, verdict)
	}
	if verdict.Status == result.StatusApproved {
		return exitApproved, nil
	}
	return exitRefused, nil
}

// printVerdict prints the verdict with its scores and reasons.
func printVerdict(w io.Writer, v *session.Verdict) {
	fmt.Fprintf(w, "verdict %s\n", v.Status)
	s := v.Scores
	fmt.Fprintf(w, "  scores    face similarity %.1f  liveness %.1f  anti-spoof %.1f", s.FaceSimilarity, s.Liveness, s.AntiSpoof)
	if s.Occlusion != "" {
		fmt.Fprintf(w, "  occlusion %s", s.Occlusion)
	}
	fmt.Fprintln(w)
	reasons := "none"
	if len(v.Reasons) > 0 {
		reasons = strings.Join(v.Reasons, ", ")
	}
	fmt.Fprintf(w, "  reasons   %s\n", reasons)
	if f := v.Flash; f.Steps > 0 {
		fmt.Fprintf(w, "  flashmark %d steps, correlation %.2f, lag %.0f ms\n", f.Steps, f.Correlation, f.LagMS)
	}
	if v.Guard.Risk != "" {
		fmt.Fprintf(w, "  guard     risk %s", v.Guard.Risk)
		if len(v.Guard.Signals) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(v.Guard.Signals, ", "))
		}
		fmt.Fprintln(w)
	}
	if v.ResultID != "" {
		fmt.Fprintf(w, "  result    %s\n", v.ResultID)
	}
}

// getOrDelete runs `glintctl NOUN get|DELVERB ID` against the kiosk API:
// GET prefix+ID printed as JSON into out's type, or DELETE prefix+ID and
// the message done (with the ID).
func getOrDelete(ctx context.Context, noun string, args []string, idName, prefix, delVerb, done string, out any, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet(noun+" "+args[0], stderr)
	var af apiFlags
	af.register(fs)
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return exitUsage, err
	}
	if len(pos) != 1 {
		return exitUsage, usageError{noun + " " + args[0] + ": want one " + idName}
	}
	c, err := af.client()
	if err != nil {
		return exitUsage, err
	}
	if args[0] == delVerb {
		if err := c.do(ctx, "DELETE", prefix+pos[0], "", nil, nil); err != nil {
			return exitUsage, err
		}
		fmt.Fprintf(stdout, done+"\n", pos[0])
		return 0, nil
	}
	if err := c.do(ctx, "GET", prefix+pos[0], "", nil, out); err != nil {
		return exitUsage, err
	}
	return 0, printJSON(stdout, out)
}
