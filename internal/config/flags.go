package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// ParseConfigPath parses the arguments of a command whose only flag is
// --config FILE (default def), as the daemons and their small subcommands
// take it. When done is true the command must exit with code: 0 after -h,
// 2 after a usage error (already reported on stderr, followed by usage).
func ParseConfigPath(name string, args []string, def string, usage func(), stderr io.Writer) (path string, code int, done bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage
	p := fs.String("config", def, "configuration file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", 0, true
		}
		return "", 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unknown command %q\n", name, fs.Arg(0))
		usage()
		return "", 2, true
	}
	return *p, 0, false
}
