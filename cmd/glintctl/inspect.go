package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/result"
	"github.com/glintdev/glint/sync/envelope"
)

// inspection is what `glintctl inspect` prints.
type inspection struct {
	Bytes             int               `json:"bytes"`
	Algorithm         string            `json:"algorithm,omitempty"`
	KID               string            `json:"kid,omitempty"`
	ContentType       string            `json:"content_type,omitempty"`
	Verified          bool              `json:"verified"`
	VerifiedWith      string            `json:"verified_with,omitempty"`
	VerificationError string            `json:"verification_error,omitempty"`
	Canonical         *bool             `json:"canonical_payload,omitempty"`
	Record            *result.Record    `json:"record,omitempty"`
	Receipt           *envelope.Receipt `json:"receipt,omitempty"`
	PayloadError      string            `json:"payload_error,omitempty"`
}

// errNotVerified makes inspect exit 1 after printing its JSON.
var errNotVerified = errors.New("signature not verified")

func runInspect(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: glintctl inspect [--pubkey FILE] FILE|-

Decodes a signed envelope (a result record or a hub receipt: raw COSE_Sign1,
base64, hex, or the JSON of GET /api/v1/results/{id}), prints it as JSON and,
given the signer's public key (PEM), verifies it. Exit 0 when verified (or
when no key was given and it decodes), 1 when the signature does not verify
or the input is not an envelope.
`)
		fs.PrintDefaults()
	}
	pubFile := fs.String("pubkey", "", "signer's public key (PKIX PEM: the device key for records, the hub key for receipts)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		return usageError{"inspect: want exactly one FILE or -"}
	}
	var raw []byte
	var err error
	if fs.Arg(0) == "-" {
		raw, err = io.ReadAll(io.LimitReader(stdin, 4*envelope.MaxSize))
	} else {
		raw, err = os.ReadFile(fs.Arg(0))
	}
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	var pub *device.PublicKey
	if *pubFile != "" {
		b, err := os.ReadFile(*pubFile)
		if err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
		k, err := device.ParsePublicKey(b)
		pub = &k
		if err != nil {
			return fmt.Errorf("inspect: %s: %w", *pubFile, err)
		}
	}
	ins, err := inspect(unwrapInput(raw), pub)
	if ins != nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ins); err != nil {
			return err
		}
	}
	return err
}

// unwrapInput accepts raw CBOR, the hub API's JSON (its "envelope" field),
// base64 or hex text.
func unwrapInput(b []byte) []byte {
	if len(b) > 0 && b[0] == 0xd2 { // CBOR tag 18: COSE_Sign1
		return b
	}
	t := bytes.TrimSpace(b)
	var api struct {
		Envelope []byte `json:"envelope"`
	}
	if len(t) > 0 && t[0] == '{' && json.Unmarshal(t, &api) == nil && len(api.Envelope) > 0 {
		return api.Envelope
	}
	s := strings.Join(strings.Fields(string(t)), "")
	if d, err := hex.DecodeString(s); err == nil && len(d) > 0 {
		return d
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(s); err == nil && len(d) > 0 {
			return d
		}
	}
	return b
}

// inspect decodes b and, with pub, verifies it: an Ed25519 key (file-held
// device keys, the hub's receipt key) or a P-256 key (TPM-held device keys,
// ES256 envelopes).
func inspect(b []byte, pub *device.PublicKey) (*inspection, error) {
	e, err := envelope.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("inspect: not a valid envelope (%s): %w", envelope.Reason(err), err)
	}
	ins := &inspection{Bytes: len(b), Algorithm: string(e.Alg), KID: e.KID, ContentType: e.ContentType}
	switch e.ContentType {
	case envelope.ContentTypeRecord:
		r, err := e.Record()
		if err != nil {
			ins.PayloadError = err.Error()
		} else {
			ins.Record = r
			c := result.IsCanonical(e.Payload)
			ins.Canonical = &c
		}
	case envelope.ContentTypeReceipt:
		if pub != nil && pub.Alg == device.AlgEdDSA {
			if rc, err := envelope.OpenReceipt(b, ed25519.PublicKey(pub.Raw)); err == nil {
				ins.Receipt = rc
			}
		}
	default:
		ins.PayloadError = "unknown content type"
	}
	if pub == nil {
		ins.VerificationError = "no --pubkey given: decoded, not verified"
		return ins, nil
	}
	ins.VerifiedWith = pub.KeyID()
	if err := e.VerifyKey(*pub, e.ContentType); err != nil {
		ins.VerificationError = err.Error()
		return ins, fmt.Errorf("inspect: %w: %v", errNotVerified, err)
	}
	ins.Verified = ins.PayloadError == ""
	if !ins.Verified {
		return ins, fmt.Errorf("inspect: signature valid but payload invalid: %s", ins.PayloadError)
	}
	return ins, nil
}
