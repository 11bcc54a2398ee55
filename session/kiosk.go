package session

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/glintdev/glint/flashmark"
	"github.com/glintdev/glint/inference"
	"github.com/glintdev/glint/result"
	"github.com/prometheus/client_golang/prometheus"
)

// This file is the kiosk half of the local API: sessions, their
// server-sent events, enrolments and the simulator's presentation switch.
// docs/openapi.yaml documents every route (a test keeps the two in step);
// docs/kiosk-api.md shows them with curl.

// EnrolmentStore is what the API needs from the enrolment store
// (*Enrolments).
type EnrolmentStore interface {
	Enrol(ctx context.Context, subject string, portrait []byte) (Enrolment, error)
	Enrolment(id string) (Enrolment, error)
	Delete(id string) error
}

// SimControl switches what stands in front of the simulated camera (the
// demo and tests: a bona fide face or an attack species). The API serves it
// only when APIConfig.SimControl is set.
type SimControl interface {
	// SetPresentation puts species ("bona_fide" or an attack species, one
	// of Presentations) with face (a face photo's name; "" keeps the
	// current one) in front of the camera.
	SetPresentation(species, face string) error
	// Presentations lists the accepted species.
	Presentations() []string
}

// FieldError is a request field the caller got wrong: the API answers 400
// naming Field. Sessions implementations may return it from Create.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// APIError is the JSON body of every error answer of the kiosk API.
type APIError struct {
	// Error is a human-readable message.
	Error string `json:"error"`
	// Code is a stable machine code (see the Code* constants and the
	// portrait codes of inference).
	Code string `json:"code"`
	// Field names the request field at fault, when there is one.
	Field string `json:"field,omitempty"`
}

// API error codes.
const (
	CodeMalformedBody    = "malformed_body"
	CodeUnknownField     = "unknown_field"
	CodeMissingField     = "missing_field"
	CodeInvalidField     = "invalid_field"
	CodeTooLarge         = "too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeSessionNotFound  = "session_not_found"
	CodeUnknownReference = "unknown_reference"
	CodeBusy             = "busy"
	CodeTokenGone        = "token_gone"
	CodeUnavailable      = "unavailable"
	CodeUnauthorized     = "unauthorized"
	CodeInternal         = "internal"
)

// Request body limits.
const (
	// maxJSONBody bounds the session requests' bodies.
	maxJSONBody = 64 << 10
	// maxMultipartOverhead is what an enrolment upload may add to the
	// portrait (part headers, boundaries, the subject).
	maxMultipartOverhead = 64 << 10
)

// maxEnrolJSONBody fits a 2 MB portrait in base64 plus the rest.
var maxEnrolJSONBody = int64(base64.StdEncoding.EncodedLen(inference.MaxPortraitBytes) + maxMultipartOverhead)

// keepaliveInterval is how often an idle event stream gets a comment line,
// so that proxies and clients do not time it out.
const keepaliveInterval = 15 * time.Second

// httpError is an error answer on its way out.
type httpError struct {
	status int
	body   APIError
}

func (e *httpError) Error() string { return e.body.Error }

func badRequest(code, field, format string, args ...any) *httpError {
	return &httpError{http.StatusBadRequest, APIError{Error: fmt.Sprintf(format, args...), Code: code, Field: field}}
}

// kioskMetrics counts what the kiosk routes do.
type kioskMetrics struct {
	requests   *prometheus.CounterVec
	sessions   *prometheus.CounterVec
	enrolments *prometheus.CounterVec
	rejected   *prometheus.CounterVec
}

func newKioskMetrics(reg prometheus.Registerer, store EnrolmentStore) *kioskMetrics {
	m := &kioskMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glint_api_requests_total", Help: "Local API requests by route and HTTP status.",
		}, []string{"route", "code"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glint_api_sessions_total", Help: "Session requests by outcome: created, started, cancelled, busy, token_gone, unknown_reference, unavailable, rejected.",
		}, []string{"outcome"}),
		enrolments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glint_enrolments_total", Help: "Enrolment requests by outcome: created, rejected (portrait or subject), deleted, error.",
		}, []string{"outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glint_enrolment_portraits_rejected_total", Help: "Enrolment portraits refused, by validation code.",
		}, []string{"code"}),
	}
	reg.MustRegister(m.requests, m.sessions, m.enrolments, m.rejected)
	if c, ok := store.(interface{ Count() (int, error) }); ok {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "glint_enrolments", Help: "Enrolments stored (-1 when the store cannot be read).",
		}, func() float64 {
			n, err := c.Count()
			if err != nil {
				return -1
			}
			return float64(n)
		}))
	}
	return m
}

// registerKiosk adds the kiosk routes to mux.
func (a *API) registerKiosk(mux *http.ServeMux) {
	a.kmetrics = newKioskMetrics(a.registry, a.cfg.Enrolments)
	a.handle(mux, "POST /v1/sessions", a.createSession)
	a.handle(mux, "GET /v1/sessions/{id}", a.getSession)
	a.handle(mux, "DELETE /v1/sessions/{id}", a.cancelSession)
	a.handle(mux, "POST /v1/sessions/{id}/start", a.startSession)
	a.handle(mux, "GET /v1/sessions/{id}/events", a.sessionEvents)
	a.handle(mux, "POST /v1/enrollments", a.createEnrolment)
	a.handle(mux, "GET /v1/enrollments/{id}", a.getEnrolment)
	a.handle(mux, "DELETE /v1/enrollments/{id}", a.deleteEnrolment)
	if a.cfg.SimControl != nil {
		a.handle(mux, "GET /v1/sim/presentation", a.simPresentations)
		a.handle(mux, "POST /v1/sim/presentation", a.setSimPresentation)
	}
}

// handle registers h for pattern, counting its answers by status.
func (a *API) handle(mux *http.ServeMux, pattern string, h func(http.ResponseWriter, *http.Request) error) {
	a.routes = append(a.routes, pattern)
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		if err := h(rec, r); err != nil {
			if rec.status != 0 {
				// The answer has begun (the client went away while
				// it was written): nothing more to say.
				a.log.Debug("api write", "path", r.URL.Path, "err", err)
			} else {
				a.writeError(rec, r, err)
			}
		}
		code := rec.status
		if code == 0 {
			code = http.StatusOK
		}
		a.kmetrics.requests.WithLabelValues(pattern, strconv.Itoa(code)).Inc()
	})
}

// Routes lists the patterns the API serves ("METHOD /path"), in
// registration order.
func (a *API) Routes() []string { return slices.Clone(a.routes) }

// statusRecorder remembers the status written; Unwrap lets
// http.ResponseController reach the real writer's Flush.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeError maps err to a status and an APIError body.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	he := a.classify(err)
	if he.status >= 500 && he.body.Code == CodeInternal {
		a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		a.log.Debug("api request refused", "method", r.Method, "path", r.URL.Path, "status", he.status, "err", err)
	}
	if he.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	_ = writeJSON(w, he.status, he.body)
}

// classify maps an error to its HTTP answer.
func (a *API) classify(err error) *httpError {
	var he *httpError
	var fe *FieldError
	var pe *inference.PortraitError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he
	case errors.As(err, &fe):
		return badRequest(CodeInvalidField, fe.Field, "%s", fe.Error())
	case errors.As(err, &mbe):
		return &httpError{http.StatusRequestEntityTooLarge, APIError{Error: fmt.Sprintf("request body over %d bytes", mbe.Limit), Code: CodeTooLarge}}
	case errors.As(err, &pe):
		return &httpError{http.StatusUnprocessableEntity, APIError{Error: pe.Error(), Code: string(pe.Code), Field: "portrait"}}
	case errors.Is(err, ErrInvalidSubject):
		return badRequest(CodeInvalidField, "subject", "%v", err)
	case errors.Is(err, ErrBusy):
		return &httpError{http.StatusConflict, APIError{Error: err.Error(), Code: CodeBusy}}
	case errors.Is(err, ErrTokenGone):
		return &httpError{http.StatusGone, APIError{Error: err.Error(), Code: CodeTokenGone}}
	case errors.Is(err, ErrNotFound):
		return &httpError{http.StatusNotFound, APIError{Error: err.Error(), Code: CodeSessionNotFound}}
	case errors.Is(err, ErrUnknownReference):
		return &httpError{http.StatusNotFound, APIError{Error: err.Error(), Code: CodeUnknownReference, Field: "reference_id"}}
	case errors.Is(err, ErrUnavailable):
		return &httpError{http.StatusServiceUnavailable, APIError{Error: err.Error(), Code: CodeUnavailable}}
	}
	return &httpError{http.StatusInternalServerError, APIError{Error: "internal error: " + err.Error(), Code: CodeInternal}}
}

// decodeJSON reads one JSON object of at most limit bytes into v, refusing
// unknown fields and trailing data, with errors that name the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &httpError{http.StatusUnsupportedMediaType, APIError{Error: fmt.Sprintf("content type %q: want application/json", ct), Code: CodeUnsupportedMedia}}
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest(CodeMalformedBody, "", "trailing data after the JSON object")
	}
	return nil
}

// jsonError turns a decoding error into a 400 naming the field (or a 413).
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return badRequest(CodeMalformedBody, "", "empty body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest(CodeMalformedBody, "", "truncated JSON")
	case errors.As(err, &se):
		return badRequest(CodeMalformedBody, "", "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return badRequest(CodeMalformedBody, "", "want a JSON object, got %s", te.Value)
		}
		return badRequest(CodeInvalidField, field, "field %q: want %s, got %s", field, te.Type, te.Value)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return badRequest(CodeUnknownField, f, "unknown field %q", f)
	}
	return badRequest(CodeMalformedBody, "", "malformed JSON: %v", err)
}

// sessionsOr503 is the session manager, or a 503 when glintd runs without
// one (no models, no camera wiring).
func (a *API) sessionsOr503() (Sessions, error) {
	if a.cfg.Sessions == nil {
		return nil, &httpError{http.StatusServiceUnavailable, APIError{Error: "sessions are not available on this device", Code: CodeUnavailable}}
	}
	return a.cfg.Sessions, nil
}

func (a *API) enrolmentsOr503() (EnrolmentStore, error) {
	if a.cfg.Enrolments == nil {
		return nil, &httpError{http.StatusServiceUnavailable, APIError{Error: "enrolment is not configured on this device (enrolment.key_file)", Code: CodeUnavailable}}
	}
	return a.cfg.Enrolments, nil
}

// sessionOutcome counts a session request's outcome.
func (a *API) sessionOutcome(ok string, err error) {
	out := ok
	switch {
	case err == nil:
	case errors.Is(err, ErrBusy):
		out = "busy"
	case errors.Is(err, ErrTokenGone):
		out = "token_gone"
	case errors.Is(err, ErrUnknownReference):
		out = "unknown_reference"
	case errors.Is(err, ErrUnavailable):
		out = "unavailable"
	default:
		out = "rejected"
	}
	a.kmetrics.sessions.WithLabelValues(out).Inc()
}

// checkRequest validates a session request, naming the field at fault.
func checkRequest(req Request) error {
	if err := CheckSubject(req.Subject); err != nil {
		return badRequest(CodeInvalidField, "subject", "%v", err)
	}
	if req.ReferenceID == "" {
		return badRequest(CodeMissingField, "reference_id", "reference_id is required")
	}
	if len(req.ReferenceID) > 128 {
		return badRequest(CodeInvalidField, "reference_id", "reference_id longer than 128 bytes")
	}
	if req.Mode != "" && !req.Mode.Valid() {
		return badRequest(CodeInvalidField, "mode", "mode %q: want %q or %q", req.Mode, result.ModeDynamic, result.ModeExpress)
	}
	switch req.Level {
	case "", flashmark.LevelLoose, flashmark.LevelStandard, flashmark.LevelStrict, flashmark.LevelClosed:
	default:
		return badRequest(CodeInvalidField, "liveness_level", "liveness_level %q: want LOOSE, STANDARD, STRICT or CLOSED", req.Level)
	}
	return nil
}

func (a *API) createSession(w http.ResponseWriter, r *http.Request) error {
	s, err := a.sessionsOr503()
	if err != nil {
		return err
	}
	var req Request
	if err := decodeJSON(w, r, maxJSONBody, &req); err != nil {
		a.sessionOutcome("", err)
		return err
	}
	if err := checkRequest(req); err != nil {
		a.sessionOutcome("", err)
		return err
	}
	t, err := s.Create(r.Context(), req)
	a.sessionOutcome("created", err)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/sessions/"+t.ID)
	return writeJSON(w, http.StatusCreated, t)
}

// startBody is the optional body of POST /v1/sessions/{id}/start.
type startBody struct {
	Token string `json:"token"`
}

func (a *API) startSession(w http.ResponseWriter, r *http.Request) error {
	s, err := a.sessionsOr503()
	if err != nil {
		return err
	}
	token := r.Header.Get("X-Session-Token")
	if token == "" && r.ContentLength != 0 {
		var b startBody
		if err := decodeJSON(w, r, maxJSONBody, &b); err != nil {
			return err
		}
		token = b.Token
	}
	if token == "" {
		return badRequest(CodeMissingField, "token", "the session token is required (X-Session-Token header or {\"token\": …})")
	}
	info, err := s.Start(r.Context(), r.PathValue("id"), token)
	a.sessionOutcome("started", err)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, info)
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request) error {
	s, err := a.sessionsOr503()
	if err != nil {
		return err
	}
	info, err := s.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

func (a *API) cancelSession(w http.ResponseWriter, r *http.Request) error {
	s, err := a.sessionsOr503()
	if err != nil {
		return err
	}
	if err := s.Cancel(r.PathValue("id")); err != nil {
		return err
	}
	a.kmetrics.sessions.WithLabelValues("cancelled").Inc()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// sessionEvents streams a session's events as server-sent events: one
// "id: SEQ / event: TYPE / data: JSON" block per event, flushed at once,
// ending after the verdict. Last-Event-ID (or ?after=SEQ) resumes after that
// event.
func (a *API) sessionEvents(w http.ResponseWriter, r *http.Request) error {
	s, err := a.sessionsOr503()
	if err != nil {
		return err
	}
	after := 0
	for _, src := range []struct{ name, v string }{{"Last-Event-ID", r.Header.Get("Last-Event-ID")}, {"after", r.URL.Query().Get("after")}} {
		if src.v == "" {
			continue
		}
		n, err := strconv.Atoi(src.v)
		if err != nil || n < 0 {
			return badRequest(CodeInvalidField, src.name, "%s %q: want an event sequence number", src.name, src.v)
		}
		after = n
		break
	}
	events, cancel, err := s.Subscribe(r.PathValue("id"), after)
	if err != nil {
		return err
	}
	defer cancel()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The client reconnects after 1 s, sending Last-Event-ID.
	if _, err := io.WriteString(w, "retry: 1000\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		a.log.Debug("event stream: flush", "err", err)
		return nil
	}
	keepalive := time.NewTicker(keepaliveInterval)
	defer keepalive.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			data, err := json.Marshal(ev)
			if err != nil {
				a.log.Error("event stream: encode", "err", err)
				return nil
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, data); err != nil {
				return nil // the client went away
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
			if ev.Type == EventVerdict {
				return nil
			}
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return nil
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		case <-r.Context().Done():
			return nil
		case <-a.stopping:
			return nil
		}
	}
}

// enrolBody is the JSON form of POST /v1/enrollments.
type enrolBody struct {
	Subject string `json:"subject"`
	// Portrait is the PNG or JPEG file, base64 (standard alphabet).
	Portrait string `json:"portrait"`
}

func (a *API) createEnrolment(w http.ResponseWriter, r *http.Request) error {
	store, err := a.enrolmentsOr503()
	if err != nil {
		return err
	}
	subject, portrait, err := readEnrolment(w, r)
	if err != nil {
		a.kmetrics.enrolments.WithLabelValues("rejected").Inc()
		return err
	}
	e, err := store.Enrol(r.Context(), subject, portrait)
	clear(portrait) // retention, if on, has its own encrypted copy
	if err != nil {
		var pe *inference.PortraitError
		switch {
		case errors.As(err, &pe):
			a.kmetrics.rejected.WithLabelValues(string(pe.Code)).Inc()
			a.kmetrics.enrolments.WithLabelValues("rejected").Inc()
		case errors.Is(err, ErrInvalidSubject):
			a.kmetrics.enrolments.WithLabelValues("rejected").Inc()
		default:
			a.kmetrics.enrolments.WithLabelValues("error").Inc()
		}
		return err
	}
	a.kmetrics.enrolments.WithLabelValues("created").Inc()
	w.Header().Set("Location", "/v1/enrollments/"+e.ReferenceID)
	return writeJSON(w, http.StatusCreated, e)
}

// tooLargePortrait is the 413 of a portrait over inference.MaxPortraitBytes.
func tooLargePortrait(n int) error {
	return &httpError{http.StatusRequestEntityTooLarge, APIError{
		Error: fmt.Sprintf("portrait of %d bytes: at most %d", n, inference.MaxPortraitBytes),
		Code:  string(inference.CodeTooLarge), Field: "portrait",
	}}
}

// readEnrolment reads the subject and the portrait from a multipart form
// (fields subject and portrait) or a JSON body (portrait in base64).
func readEnrolment(w http.ResponseWriter, r *http.Request) (string, []byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	if mt != "multipart/form-data" {
		var b enrolBody
		if err := decodeJSON(w, r, maxEnrolJSONBody, &b); err != nil {
			return "", nil, err
		}
		if b.Subject == "" {
			return "", nil, badRequest(CodeMissingField, "subject", "subject is required")
		}
		if b.Portrait == "" {
			return "", nil, badRequest(CodeMissingField, "portrait", "portrait is required (base64 of a PNG or JPEG file)")
		}
		if n := base64.StdEncoding.DecodedLen(len(b.Portrait)); n > inference.MaxPortraitBytes+2 {
			return "", nil, tooLargePortrait(n)
		}
		p, err := base64.StdEncoding.DecodeString(b.Portrait)
		if err != nil {
			return "", nil, badRequest(CodeInvalidField, "portrait", "portrait is not base64: %v", err)
		}
		if len(p) > inference.MaxPortraitBytes {
			return "", nil, tooLargePortrait(len(p))
		}
		return b.Subject, p, nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, inference.MaxPortraitBytes+maxMultipartOverhead)
	mr, err := r.MultipartReader()
	if err != nil {
		return "", nil, badRequest(CodeMalformedBody, "", "multipart body: %v", err)
	}
	var subject string
	var portrait []byte
	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, multipartError(err)
		}
		name := part.FormName()
		if seen[name] {
			return "", nil, badRequest(CodeInvalidField, name, "field %q given twice", name)
		}
		seen[name] = true
		switch name {
		case "subject":
			b, err := io.ReadAll(io.LimitReader(part, MaxSubjectLen+1))
			if err != nil {
				return "", nil, multipartError(err)
			}
			subject = string(b)
		case "portrait":
			b, err := io.ReadAll(io.LimitReader(part, inference.MaxPortraitBytes+1))
			if err != nil {
				return "", nil, multipartError(err)
			}
			if len(b) > inference.MaxPortraitBytes {
				return "", nil, tooLargePortrait(len(b))
			}
			portrait = b
		case "":
			return "", nil, badRequest(CodeMalformedBody, "", "a multipart part without a form name")
		default:
			return "", nil, badRequest(CodeUnknownField, name, "unknown field %q (want subject and portrait)", name)
		}
		part.Close()
	}
	if subject == "" {
		return "", nil, badRequest(CodeMissingField, "subject", "subject is required")
	}
	if portrait == nil {
		return "", nil, badRequest(CodeMissingField, "portrait", "portrait is required (a PNG or JPEG file part)")
	}
	return subject, portrait, nil
}

// multipartError is a 413 when the body limit was hit, a 400 otherwise.
func multipartError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return badRequest(CodeMalformedBody, "", "multipart body: %v", err)
}

func (a *API) getEnrolment(w http.ResponseWriter, r *http.Request) error {
	store, err := a.enrolmentsOr503()
	if err != nil {
		return err
	}
	e, err := store.Enrolment(r.PathValue("id"))
	if err != nil {
		return notFoundEnrolment(err)
	}
	return writeJSON(w, http.StatusOK, e)
}

func (a *API) deleteEnrolment(w http.ResponseWriter, r *http.Request) error {
	store, err := a.enrolmentsOr503()
	if err != nil {
		return err
	}
	if err := store.Delete(r.PathValue("id")); err != nil {
		return notFoundEnrolment(err)
	}
	a.kmetrics.enrolments.WithLabelValues("deleted").Inc()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// notFoundEnrolment answers an unknown enrolment with a 404 that names no
// request field (the ID is in the path).
func notFoundEnrolment(err error) error {
	if errors.Is(err, ErrUnknownReference) {
		return &httpError{http.StatusNotFound, APIError{Error: err.Error(), Code: CodeUnknownReference}}
	}
	return err
}

// simPresentation is the body of POST /v1/sim/presentation and the answer
// of both sim routes.
type simPresentation struct {
	Species string `json:"species"`
	Face    string `json:"face,omitempty"`
}

// simPresentations is the answer of GET /v1/sim/presentation.
type simPresentations struct {
	Presentations []string `json:"presentations"`
}

func (a *API) simPresentations(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, simPresentations{Presentations: a.cfg.SimControl.Presentations()})
}

func (a *API) setSimPresentation(w http.ResponseWriter, r *http.Request) error {
	var p simPresentation
	if err := decodeJSON(w, r, maxJSONBody, &p); err != nil {
		return err
	}
	known := a.cfg.SimControl.Presentations()
	if p.Species == "" {
		return badRequest(CodeMissingField, "species", "species is required (one of %s)", strings.Join(known, ", "))
	}
	if !slices.Contains(known, p.Species) {
		return badRequest(CodeInvalidField, "species", "species %q: want one of %s", p.Species, strings.Join(known, ", "))
	}
	if err := a.cfg.SimControl.SetPresentation(p.Species, p.Face); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return err
		}
		return badRequest(CodeInvalidField, "face", "%v", err)
	}
	a.log.Info("simulator presentation switched", "species", p.Species, "face", p.Face)
	return writeJSON(w, http.StatusOK, p)
}
