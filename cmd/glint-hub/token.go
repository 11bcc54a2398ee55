package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"rsc.io/qr"

	"github.com/glintdev/glint/device"
	"github.com/glintdev/glint/hub/store"
	"github.com/glintdev/glint/internal/service"
)

const tokenUsage = `usage:
  glint-hub token create --site S [--ttl 15m] [--note TEXT] [--qr FILE.png]
                         [--hub URL] [--hub-ca FILE] [--policy FILE.json] [--config FILE]
  glint-hub token list [--site S] [--config FILE]

create issues a one-time claim token for site S, valid for --ttl (at most
7 days), and prints it with its provisioning link
glint://provision?hub=URL&token=T[&ca=SHA256], which --qr also writes as a
QR code PNG for the technician's device to scan. Only the token's SHA-256
is stored: the printed token is the only copy. --hub defaults to
provision.hub_url; --hub-ca pins the hub's HTTPS CA certificate in the
link (its SHA-256). --policy sets the site's policy (JSON) that devices
receive when they are provisioned.

list shows tokens (never the tokens themselves): site, expiry, and which
device used each.

`

// tokenCommand implements glint-hub token.
func tokenCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "create" && args[0] != "list") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, tokenUsage)
			return exitOK
		}
		fmt.Fprint(stderr, tokenUsage)
		return exitConfig
	}
	sub := args[0]
	fs := flag.NewFlagSet("glint-hub token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tokenUsage); fs.PrintDefaults() }
	path := fs.String("config", defaultConfigPath, "hub configuration file (store, provision.hub_url)")
	site := fs.String("site", "", "site the token binds the device to")
	ttl := fs.Duration("ttl", 15*time.Minute, "how long the token is valid")
	note := fs.String("note", "", "free text kept with the token (e.g. the kiosk's location)")
	qrFile := fs.String("qr", "", "write the provisioning link as a QR code PNG to this file")
	hubURL := fs.String("hub", "", "the hub API URL devices use (default provision.hub_url)")
	hubCA := fs.String("hub-ca", "", "PEM certificate of the CA of the hub's HTTPS endpoint, pinned in the link")
	policy := fs.String("policy", "", "JSON file: the site's policy handed to devices at provisioning")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "glint-hub token %s: unexpected argument %q\n", sub, fs.Arg(0))
		return exitConfig
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitConfig
	}
	dialect, dsn, err := storeSource(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "glint-hub token: %v\n", err)
		return exitConfig
	}
	ctx, stop := service.SignalContext(context.Background())
	defer stop()
	if dialect == store.SQLite {
		if _, err := os.Stat(dsn); err != nil {
			fmt.Fprintf(stderr, "glint-hub token: store %s: %v (has the hub run with this configuration?)\n", dsn, err)
			return exitFailure
		}
	}
	st, err := store.Open(ctx, dialect, dsn)
	if err != nil {
		fmt.Fprintln(stderr, "glint-hub token:", err)
		return exitFailure
	}
	defer st.Close()

	if sub == "list" {
		ts, err := st.ClaimTokens(ctx, *site)
		if err != nil {
			fmt.Fprintln(stderr, "glint-hub token:", err)
			return exitFailure
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOKEN ID\tSITE\tCREATED\tEXPIRES\tUSED BY\tNOTE")
		for _, t := range ts {
			used := "-"
			if !t.UsedAt.IsZero() {
				used = t.DeviceID + " at " + t.UsedAt.Format(time.RFC3339)
			} else if time.Now().After(t.ExpiresAt) {
				used = "(expired)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.SiteID, t.CreatedAt.Format(time.RFC3339), t.ExpiresAt.Format(time.RFC3339), used, t.Note)
		}
		tw.Flush()
		return exitOK
	}

	if *site == "" {
		fmt.Fprintln(stderr, "glint-hub token create: --site is required")
		return exitConfig
	}
	link := device.ProvisionLink{Hub: *hubURL}
	if link.Hub == "" {
		link.Hub = cfg.Provision.HubURL
	}
	if link.Hub == "" {
		fmt.Fprintln(stderr, "glint-hub token create: no hub URL: set provision.hub_url or pass --hub")
		return exitConfig
	}
	if *hubCA != "" {
		fp, err := certFingerprint(*hubCA)
		if err != nil {
			fmt.Fprintf(stderr, "glint-hub token create: --hub-ca: %v\n", err)
			return exitConfig
		}
		link.CAFingerprint = fp
	}
	// Check the link before anything is stored.
	if err := (device.ProvisionLink{Hub: link.Hub, Token: strings.Repeat("A", 32), CAFingerprint: link.CAFingerprint}).Check(); err != nil {
		fmt.Fprintln(stderr, "glint-hub token create:", err)
		return exitConfig
	}
	if *policy != "" {
		b, err := os.ReadFile(*policy)
		if err == nil && !json.Valid(b) {
			err = errors.New("not valid JSON")
		}
		if err == nil {
			err = st.SetSitePolicy(ctx, *site, b)
		}
		if err != nil {
			fmt.Fprintf(stderr, "glint-hub token create: --policy: %v\n", err)
			return exitConfig
		}
	}
	tok, ct, err := st.CreateClaimToken(ctx, *site, *ttl, *note, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "glint-hub token create:", err)
		return exitConfig
	}
	link.Token = tok
	if err := link.Check(); err != nil {
		fmt.Fprintln(stderr, "glint-hub token create:", err)
		return exitConfig
	}
	fmt.Fprintf(stdout, "token:   %s\n", tok)
	fmt.Fprintf(stdout, "id:      %s (site %s, expires %s, single use)\n", ct.ID, ct.SiteID, ct.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintf(stdout, "link:    %s\n", link)
	if *qrFile != "" {
		code, err := qr.Encode(link.String(), qr.M)
		if err != nil {
			fmt.Fprintln(stderr, "glint-hub token create: QR code:", err)
			return exitFailure
		}
		code.Scale = 8
		if err := os.WriteFile(*qrFile, code.PNG(), 0o600); err != nil {
			fmt.Fprintln(stderr, "glint-hub token create:", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "qr code: %s\n", *qrFile)
	}
	fmt.Fprintf(stdout, "on the device: glintctl provision --link '%s'\n", link)
	return exitOK
}

// certFingerprint is the hex SHA-256 of the first certificate in a PEM
// file (what a provisioning link pins).
func certFingerprint(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return "", errors.New("no CERTIFICATE PEM block")
		}
		if blk.Type == "CERTIFICATE" {
			sum := sha256.Sum256(blk.Bytes)
			return hex.EncodeToString(sum[:]), nil
		}
	}
}
