//go:build vouchtool

// Command timestamp-server runs sigstore's RFC 3161 timestamp authority (the REST API server
// of github.com/sigstore/timestamp-authority, in-memory signer) on a loopback address only.
// The upstream command also always serves Prometheus metrics on ":2112" — every interface —
// with no flag to move or disable it; vouch's tests listen on 127.0.0.1 only, so hack/tools.sh
// builds this main against the pinned module instead (build tag vouchtool keeps it out of
// vouch's own packages). It takes the upstream flags the tests use.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	tsalog "github.com/sigstore/timestamp-authority/v2/pkg/log"
	"github.com/sigstore/timestamp-authority/v2/pkg/server"
	"github.com/spf13/viper"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("timestamp-server serve", flag.ExitOnError)
	host := fs.String("host", "127.0.0.1", "listen address (loopback only)")
	port := fs.Int("port", 3000, "listen port")
	scheme := fs.String("scheme", "http", "http only")
	signer := fs.String("timestamp-signer", "memory", "memory only")
	_ = fs.Bool("disable-ntp-monitoring", true, "NTP monitoring is never started")
	includeChain := fs.Bool("include-chain-in-response", false, "include the issuing chain in responses")
	logType := fs.String("log-type", "prod", "dev or prod")
	_ = fs.Parse(args)

	if ip := net.ParseIP(*host); ip == nil || !ip.IsLoopback() {
		fail("--host must be a loopback IP, not %q", *host)
	}
	if *scheme != "http" || *signer != "memory" {
		fail("only --scheme http and --timestamp-signer memory are supported")
	}
	tsalog.ConfigureLogger(*logType)
	// What the upstream command's flags default to, for the in-memory signer.
	viper.Set("timestamp-signer", "memory")
	viper.Set("timestamp-signer-hash", "sha256")
	viper.Set("default-policy-oid", "1.3.6.1.4.1.57264.2")
	viper.Set("include-chain-in-response", *includeChain)
	srv := server.NewRestAPIServer(*host, *port, []string{"http"}, false, 10*time.Second, 10*time.Second)
	defer func() { _ = srv.Shutdown() }()
	if err := srv.Serve(); err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "timestamp-server: "+format+"\n", args...)
	os.Exit(2)
}
