package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/patch"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
)

//go:embed demo/policy.yaml
var demoPolicy string

//go:embed demo/pods.yaml
var demoPods string

func demoCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Sign an image in an in-process registry and enforce the seed example policy on two Pods, narrated",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			return runDemo(ctx, stdout)
		},
	}
}

func runDemo(ctx context.Context, w io.Writer) error {
	start := time.Now()
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	say("vouch demo — the seed's verifyImages policy (shared/spec/seed-verify-images-rules.md), enforced offline.\n")

	reg := fixture.StartRegistry(false, nil)
	defer reg.Close()
	key, err := fixture.NewKey()
	if err != nil {
		return err
	}
	signed, err := reg.Push(ctx, "demo/app:signed")
	if err != nil {
		return err
	}
	if _, err := reg.Push(ctx, "demo/app:unsigned"); err != nil {
		return err
	}
	if err := reg.Sign(ctx, "demo/app", signed, key.Private, nil, ""); err != nil {
		return err
	}
	say("1. Started an OCI registry at %s, generated an ECDSA P-256 key pair, pushed", reg.Host)
	say("   %s/demo/app:signed and %s/demo/app:unsigned, and signed the first with cosign's", reg.Host, reg.Host)
	say("   format (tag sha256-<hex>.sig, no transparency log).\n")

	policyYAML := strings.ReplaceAll(demoPolicy, "REGISTRY", reg.Host)
	policyYAML = strings.Replace(policyYAML, "PUBLIC_KEY", indentLines(key.PEM, "                  "), 1)
	docs, err := manifest.Split("demo/policy.yaml", []byte(policyYAML))
	if err != nil {
		return err
	}
	set, _, err := policy.LoadDocuments(docs)
	if err != nil {
		return err
	}
	p := set.Policies()[0]
	say("2. Loaded ClusterPolicy %q with that public key as its attestor: %d rules after autogen", p.Name, len(p.Rules))
	say("   (%s) — Pods and every pod controller are covered.\n", ruleNames(p))

	eng, err := newEngine(set, registry.Options{})
	if err != nil {
		return err
	}
	pods, err := manifest.Split("demo/pods.yaml", []byte(strings.ReplaceAll(demoPods, "REGISTRY", reg.Host)))
	if err != nil {
		return err
	}
	objects, err := manifest.Objects(pods)
	if err != nil {
		return err
	}
	say("3. Admission of two Pods:\n")
	for _, o := range objects {
		resp, err := eng.Evaluate(ctx, engine.Request{Object: o.Value})
		if err != nil {
			return err
		}
		narrate(w, o.Value, resp)
	}
	say("Done in %s, with no network beyond the in-process registry.", time.Since(start).Round(time.Millisecond))
	return nil
}

func narrate(w io.Writer, obj map[string]any, resp *engine.Response) {
	meta, _ := obj["metadata"].(map[string]any)
	name := fmt.Sprintf("Pod/%v/%v", meta["namespace"], meta["name"])
	written := obj["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"]
	var denied []string
	for _, r := range resp.Results {
		if r.Status == engine.Fail || r.Status == engine.Error {
			denied = append(denied, fmt.Sprintf("%s/%s: %s", r.Policy.ReportName(), r.Rule.Name, r.Message))
		}
	}
	if len(denied) > 0 {
		fmt.Fprintf(w, "   ✗ %s with image %v is REJECTED:\n", name, written)
		for _, d := range denied {
			fmt.Fprintf(w, "       %s\n", d)
		}
		fmt.Fprintln(w)
		return
	}
	out := resp.Object["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["image"]
	ann := resp.Object["metadata"].(map[string]any)["annotations"].(map[string]any)
	fmt.Fprintf(w, "   ✓ %s is ADMITTED: %s\n", name, resp.Results[0].Message)
	fmt.Fprintf(w, "       image pinned:  %v\n", written)
	fmt.Fprintf(w, "                   -> %v\n", out)
	fmt.Fprintf(w, "       annotation:    %s: %v\n\n", patch.AnnotationVerified, ann[patch.AnnotationVerified])
}

func ruleNames(p *policy.Policy) string {
	names := make([]string, len(p.Rules))
	for i, r := range p.Rules {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}

func indentLines(s, prefix string) string {
	return strings.TrimPrefix(prefix+strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+prefix), prefix)
}
