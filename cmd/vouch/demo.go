package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/report"
)

//go:embed demo/policy.yaml
var demoPolicy []byte

//go:embed demo/pods.yaml
var demoPods []byte

func demoCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run the seed example policy against sample Pods, narrated",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), stdout)
		},
	}
}

func runDemo(ctx context.Context, w io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	fmt.Fprintln(w, "vouch demo: the seed's verifyImages policy (shared/spec/seed-verify-images-rules.md) against two Pods.")
	docs, err := manifest.Split("demo/policy.yaml", demoPolicy)
	if err != nil {
		return err
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n1. Loaded and compiled policy %q: %d rule(s) after autogen for pod controllers.\n",
		set.Policies()[0].Name, len(set.Policies()[0].Rules))
	podDocs, err := manifest.Split("demo/pods.yaml", demoPods)
	if err != nil {
		return err
	}
	objects, err := manifest.Objects(podDocs)
	if err != nil {
		return err
	}
	eng, err := engine.New(engine.Options{Policies: set})
	if err != nil {
		return err
	}
	rep := report.New()
	for _, o := range objects {
		resp, err := eng.Evaluate(ctx, engine.Request{Object: o.Value})
		if err != nil {
			return err
		}
		rep.Add(resp)
	}
	fmt.Fprintln(w, "\n2. Evaluated both Pods (no registry is contacted yet):")
	if err := rep.WriteTable(w, false); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nSignature verification arrives with the next milestone: until then every image that needs")
	fmt.Fprintln(w, "a signature check or a digest is reported as an error (\"no verifier configured\"), never as pass.")
	return nil
}
